//! What the fuzz targets share: a SCALE decoder never panics, and what it accepts encodes back to
//! bytes that decode to the same value.

use cdrchain_runtime::codec::decode_exact;
use parity_scale_codec::{Decode, Encode};

/// Decodes `data` as a whole `T`; when that succeeds, checks the encode/decode round trip.
pub fn round_trip<T: Decode + Encode + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = decode_exact::<T>(data) {
        let again: T = decode_exact(&value.encode()).expect("an encoding decodes");
        assert_eq!(again, value);
    }
}
