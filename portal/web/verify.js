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

/**
 * Verifies a bundle file's text against a chain spec (`dev`, `local`, a spec's JSON text, or ''
 * for none): `{chain, genesis_hash, results: [{kind, subject, valid, trusted, checks, story,
 * settled}]}` or `{error}`.
 */
export async function verifyBundle(text, spec) {
  const { exports: wasm } = await verifier();
  const encoder = new TextEncoder();
  const write = (value) => {
    const bytes = encoder.encode(value);
    if (bytes.length === 0) return [0, 0];
    const ptr = wasm.alloc(bytes.length);
    if (!ptr) throw new Error('the verifier is out of memory');
    new Uint8Array(wasm.memory.buffer, ptr, bytes.length).set(bytes);
    return [ptr, bytes.length];
  };
  const [bundlePtr, bundleLen] = write(text);
  const [specPtr, specLen] = write(spec);
  try {
    const out = wasm.verify(bundlePtr, bundleLen, specPtr, specLen);
    const ptr = Number(out >> 32n);
    const len = Number(out & 0xffffffffn);
    const json = new TextDecoder().decode(new Uint8Array(wasm.memory.buffer, ptr, len));
    wasm.dealloc(ptr, len);
    return JSON.parse(json);
  } finally {
    if (bundleLen) wasm.dealloc(bundlePtr, bundleLen);
    if (specLen) wasm.dealloc(specPtr, specLen);
  }
}
