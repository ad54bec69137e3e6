//! The verifier the node serves (`portal/web/verifier.wasm`, committed, so that a fresh checkout
//! serves the page without a WebAssembly toolchain) must be built from the sources it is
//! committed with: `portal/web/verifier.wasm.inputs` holds the BLAKE3 of every input file when it
//! was built (`scripts/portal.sh`), and this test recomputes it. With
//! `CDRCHAIN_PORTAL_WRITE_INPUTS=1` it writes the file instead (the script does).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use std::path::{Path, PathBuf};

/// The files whose bytes make the module: the crates it compiles and how they are built.
const INPUTS: &[&str] = &[
    "Cargo.lock",
    "Cargo.toml",
    ".cargo/config.toml",
    "runtime",
    "chain-spec",
    "node/formats",
    "portal/verifier",
];

fn files_under(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) {
    let path = root.join(relative);
    if path.is_file() {
        out.push(relative.to_path_buf());
        return;
    }
    let mut entries: Vec<_> = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().file_name()).collect();
    entries.sort();
    for name in entries {
        let child = relative.join(&name);
        let text = name.to_string_lossy();
        // Only what the build reads: sources and manifests, not tests, benches or fixtures.
        let full = root.join(&child);
        let in_src = relative.iter().any(|c| c == "src");
        let wanted = if full.is_dir() { in_src || text == "src" } else { in_src || text == "Cargo.toml" };
        if wanted {
            files_under(root, &child, out);
        }
    }
}

fn digest(root: &Path) -> String {
    let mut files = Vec::new();
    for input in INPUTS {
        files_under(root, Path::new(input), &mut files);
    }
    let mut hasher = blake3::Hasher::new();
    for file in &files {
        let bytes = std::fs::read(root.join(file)).unwrap();
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    format!("{} files, blake3 {}\n", files.len(), hasher.finalize().to_hex())
}

#[test]
fn the_committed_verifier_is_built_from_these_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let recorded = root.join("portal/web/verifier.wasm.inputs");
    let now = digest(&root);
    if std::env::var("CDRCHAIN_PORTAL_WRITE_INPUTS").is_ok_and(|v| v == "1") {
        std::fs::write(&recorded, &now).unwrap();
        return;
    }
    let then = std::fs::read_to_string(&recorded).unwrap_or_default();
    assert_eq!(
        then, now,
        "portal/web/verifier.wasm was built from other sources than these: run scripts/portal.sh and commit \
         portal/web/verifier.wasm and portal/web/verifier.wasm.inputs"
    );
}
