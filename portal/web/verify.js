// cdrchain's own bundle verification (portal/verifier, Rust compiled to WebAssembly), run in
// this browser: the node that served the page is not asked, nor trusted, for the verdict.

let loaded;

/** The verifier module's exports and the SHA-256 of its bytes (hex). */
export function verifier() {
  loaded ??= (async () => {
    const response = await fetch('/portal/verifier.wasm');
    if (!response.ok) throw new Error(`the verifier did not load: HTTP ${response.status}`);
    const bytes = await response.arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    const { instance } = await WebAssembly.instantiate(bytes, {});
    const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
    return { exports: instance.exports, sha256: hex };
  })();
  return loaded;
}

/** Calls the module's `name` with texts (or bytes) written into its memory; answers its JSON. */
async function call(name, ...texts) {
  const { exports: wasm } = await verifier();
  const encoder = new TextEncoder();
  const written = [];
  try {
    for (const text of texts) {
      const bytes = typeof text === 'string' ? encoder.encode(text) : text;
      if (bytes.length === 0) {
        written.push([0, 0]);
        continue;
      }
      const ptr = wasm.alloc(bytes.length);
      if (!ptr) throw new Error('the verifier is out of memory');
      new Uint8Array(wasm.memory.buffer, ptr, bytes.length).set(bytes);
      written.push([ptr, bytes.length]);
    }
    const out = wasm[name](...written.flat());
    const ptr = Number(out >> 32n);
    const len = Number(out & 0xffffffffn);
    const json = new TextDecoder().decode(new Uint8Array(wasm.memory.buffer, ptr, len));
    wasm.dealloc(ptr, len);
    return JSON.parse(json);
  } finally {
    for (const [ptr, len] of written) if (len) wasm.dealloc(ptr, len);
  }
}

/**
 * Verifies a bundle file's text against a chain spec (`dev`, `local`, a spec's JSON text, or ''
 * for none): `{chain, genesis_hash, results: [{kind, subject, valid, trusted, checks, story,
 * settled}]}` or `{error}`.
 */
export function verifyBundle(text, spec) {
  return call('verify', text, spec);
}

/**
 * A party's keyed digest, computed here as ingest computes it: `{canonical, kind, digest}` or
 * `{error}`. The secret and the number never leave this page; only the digest is sent.
 */
export function partyDigest({ secret, region, party }) {
  return call('party', JSON.stringify({ secret, region, party }));
}

/**
 * Reads the user's CDR export (`bytes`) as `request` (JSON: me, partner, secret, region, format,
 * file_name, timezone, system_id, tolerance_s) says: `{records, unreadable, from, to, fetch_from,
 * fetch_to}` or `{error}`. The file stays in this page.
 */
export function exportSummary(request, bytes) {
  return call('export', request, bytes);
}

/** Reconciles the export with the chain's records (JSON array): `{report, csv, unreadable}` or `{error}`. */
export function reconcileExport(request, bytes, chain) {
  return call('reconcile', request, bytes, chain);
}
