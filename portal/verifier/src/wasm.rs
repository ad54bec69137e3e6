//! The WebAssembly interface: linear-memory buffers in, a JSON verdict out.
//!
//! ```js
//! const bundle = write(text), spec = write(specText);   // alloc + copy
//! const out = exports.verify(bundle.ptr, bundle.len, spec.ptr, spec.len);
//! const ptr = Number(out >> 32n), len = Number(out & 0xffffffffn);
//! const verdict = JSON.parse(decoder.decode(memory.subarray(ptr, ptr + len)));
//! exports.dealloc(ptr, len);
//! ```

// The page and the module share linear memory through raw pointers: there is no other way
// without generated glue. Each unsafe block says what it relies on.
#![allow(unsafe_code)]

use std::alloc::{alloc as allocate, dealloc as deallocate, Layout};

/// Fails every request: verification needs no randomness.
fn no_randomness(_: &mut [u8]) -> Result<(), getrandom::Error> {
    Err(getrandom::Error::UNSUPPORTED)
}
getrandom::register_custom_getrandom!(no_randomness);

/// getrandom 0.4's custom source (`--cfg getrandom_backend="custom"`, `.cargo/config.toml`):
/// fails as [`no_randomness`] does.
///
/// # Safety
/// Writes nothing.
#[no_mangle]
unsafe extern "Rust" fn __getrandom_v03_custom(
    _dest: *mut u8,
    _len: usize,
) -> Result<(), getrandom04::Error> {
    Err(getrandom04::Error::UNSUPPORTED)
}

/// `len` bytes for the page to write into (null for 0 or when memory runs out).
#[no_mangle]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    match Layout::array::<u8>(len) {
        // SAFETY: the layout has a non-zero size, as `alloc` requires.
        Ok(layout) if len > 0 => unsafe { allocate(layout) },
        _ => std::ptr::null_mut(),
    }
}

/// Frees what [`alloc`] or [`verify`] handed out.
///
/// # Safety
/// `ptr` and `len` are exactly a live allocation of this module.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, len: usize) {
    if let (false, Ok(layout)) = (ptr.is_null() || len == 0, Layout::array::<u8>(len)) {
        // SAFETY: the caller hands back an allocation made with this layout.
        unsafe { deallocate(ptr, layout) }
    }
}

/// Reads `len` bytes at `ptr` as text (lossily: a broken byte fails the check that reads it).
///
/// # Safety
/// `ptr` and `len` are a live allocation of this module the page wrote into.
unsafe fn text<'a>(ptr: *const u8, len: usize) -> std::borrow::Cow<'a, str> {
    if ptr.is_null() || len == 0 {
        return std::borrow::Cow::Borrowed("");
    }
    // SAFETY: as the caller promises.
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads `len` bytes at `ptr`.
///
/// # Safety
/// `ptr` and `len` are a live allocation of this module the page wrote into.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: as the caller promises.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Hands `text` to the page as `(pointer << 32) | length`, to be freed with [`dealloc`].
fn answer(text: String) -> u64 {
    let out = text.into_bytes().into_boxed_slice();
    let len = out.len();
    let ptr = Box::into_raw(out).cast::<u8>();
    ((ptr as usize as u64) << 32) | len as u64
}

/// Verifies the bundle text against the spec text; answers the verdict's JSON as
/// `(pointer << 32) | length`, to be freed with [`dealloc`].
///
/// # Safety
/// Both pointers and lengths are live allocations of this module the page wrote into.
#[no_mangle]
pub unsafe extern "C" fn verify(
    bundle: *const u8,
    bundle_len: usize,
    spec: *const u8,
    spec_len: usize,
) -> u64 {
    // SAFETY: as the caller promises.
    let (bundle, spec) = unsafe { (text(bundle, bundle_len), text(spec, spec_len)) };
    answer(crate::verify_text(&bundle, &spec).to_string())
}

/// A party's keyed digest ([`crate::party_text`]): JSON in, JSON out, as [`verify`].
///
/// # Safety
/// The pointer and length are a live allocation of this module the page wrote into.
#[no_mangle]
pub unsafe extern "C" fn party(input: *const u8, input_len: usize) -> u64 {
    // SAFETY: as the caller promises.
    let input = unsafe { text(input, input_len) };
    answer(crate::party_text(&input).to_string())
}

/// Reads the user's export ([`crate::reconcile::export_text`]): options JSON and the file's bytes.
///
/// # Safety
/// Both pointers and lengths are live allocations of this module the page wrote into.
#[no_mangle]
pub unsafe extern "C" fn export(
    options: *const u8,
    options_len: usize,
    file: *const u8,
    file_len: usize,
) -> u64 {
    // SAFETY: as the caller promises.
    let (options, file) = unsafe { (text(options, options_len), bytes(file, file_len)) };
    answer(crate::reconcile::export_text(&options, file).to_string())
}

/// Reconciles the export with the chain's records ([`crate::reconcile::reconcile_text`]).
///
/// # Safety
/// The pointers and lengths are live allocations of this module the page wrote into.
#[no_mangle]
pub unsafe extern "C" fn reconcile(
    options: *const u8,
    options_len: usize,
    file: *const u8,
    file_len: usize,
    chain: *const u8,
    chain_len: usize,
) -> u64 {
    // SAFETY: as the caller promises.
    let (options, file, chain) =
        unsafe { (text(options, options_len), bytes(file, file_len), text(chain, chain_len)) };
    answer(crate::reconcile::reconcile_text(&options, file, &chain).to_string())
}
