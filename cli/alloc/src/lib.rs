//! The `cdrchain` binary's allocator: mimalloc, built with `override` so that RocksDB's C++
//! allocates from it too, and [`tune`], which sets the one option we change. This crate holds the
//! native binary's only unsafe code (that foreign call); every other crate but the portal's
//! WebAssembly verifier (`portal/verifier`, its memory interface) forbids unsafe.

/// mimalloc instead of the system allocator: every validator decodes, applies, stores and frees
/// each CDR with its strings, and glibc's malloc and free were ~14 % of a loaded localnet's CPU.
/// Under glibc, write batches and memtable arenas freed across threads also kept a saturated
/// validator near 1 GiB. Install it with `#[global_allocator]` in the binary.
pub type Allocator = mimalloc::MiMalloc;

/// The allocator value for `#[global_allocator]`.
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;

// mimalloc's own option setter, exported by the library the `mimalloc` crate links (the Rust
// binding declares it only under a feature that pulls in another crate).
extern "C" {
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same index in its v2 and v3).
const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;

/// How long freed memory stays with the process before it goes back to the kernel, in ms.
pub const PURGE_DELAY_MS: i64 = 60_000;

/// Keeps memory that mimalloc freed for [`PURGE_DELAY_MS`] before handing it back to the kernel
/// (mimalloc's default is a second). A node under load allocates and frees tens of MiB per block
/// (write batches, the block's CDRs), and every page handed back had to be faulted in and zeroed
/// again for the next block: ~4 % of the dev node's CPU in the kernel's `clear_page_erms`.
/// Measured (docs/benchmarks.md, eighth round): dev 167k-173k → 177k-184k CDRs/s, peak RSS
/// 750-777 → 820-862 MiB. Memory still goes back after a quiet minute. `MIMALLOC_PURGE_DELAY`
/// in the environment wins over this. Call it first thing in `main`.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a setter of an integer option; mimalloc allows it at any time, from any thread.
        #[allow(unsafe_code)]
        unsafe {
            mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as std::os::raw::c_long)
        }
    }
}
