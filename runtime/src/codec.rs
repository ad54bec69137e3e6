//! SCALE helpers: bounded strings and vectors whose limits are checked while decoding, before any
//! allocation, so that a hostile peer cannot make a node allocate or parse more than a limit allows.

use std::fmt;

use parity_scale_codec::{Compact, Decode, DecodeAll, Encode, Error as CodecError, Input};

/// Reads a SCALE compact length and checks it against `max` before anything is allocated.
pub fn decode_len<I: Input>(input: &mut I, max: usize, what: &'static str) -> Result<usize, CodecError> {
    let Compact(len) = Compact::<u32>::decode(input)?;
    let len = usize::try_from(len).map_err(|_| CodecError::from("length does not fit in usize"))?;
    if len > max {
        return Err(CodecError::from(what));
    }
    Ok(len)
}

/// Decodes `bytes` as exactly one `T`: trailing bytes are an error, so every value has one encoding.
pub fn decode_exact<T: Decode>(bytes: &[u8]) -> Result<T, CodecError> {
    T::decode_all(&mut &bytes[..])
}

/// A vector with at most `MAX` elements, checked when decoding.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    pub const MAX: usize = MAX;

    /// Fails (giving the vector back) when it holds more than `MAX` elements.
    pub fn new(items: Vec<T>) -> Result<Self, Vec<T>> {
        if items.len() > MAX {
            Err(items)
        } else {
            Ok(Self(items))
        }
    }

    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Encode, const MAX: usize> Encode for BoundedVec<T, MAX> {
    fn size_hint(&self) -> usize {
        self.0.size_hint()
    }
    fn encode_to<W: parity_scale_codec::Output + ?Sized>(&self, dest: &mut W) {
        self.0.encode_to(dest)
    }
}

impl<T: Decode, const MAX: usize> Decode for BoundedVec<T, MAX> {
    fn decode<I: Input>(input: &mut I) -> Result<Self, CodecError> {
        let len = decode_len(input, MAX, "vector longer than its limit")?;
        // Elements are decoded one by one: a length that the input cannot back fails at the end of
        // the input, and capacity is capped by the remaining input, not by the claimed length.
        let cap = match input.remaining_len()? {
            Some(remaining) => len.min(remaining),
            None => len.min(1024),
        };
        let mut items = Vec::with_capacity(cap);
        for _ in 0..len {
            items.push(T::decode(input)?);
        }
        Ok(Self(items))
    }
}

impl<T, const MAX: usize> std::ops::Deref for BoundedVec<T, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<'a, T, const MAX: usize> IntoIterator for &'a BoundedVec<T, MAX> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: serde::Serialize, const MAX: usize> serde::Serialize for BoundedVec<T, MAX> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: serde::Deserialize<'de>, const MAX: usize> serde::Deserialize<'de> for BoundedVec<T, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(deserializer)?;
        let len = items.len();
        Self::new(items)
            .map_err(|_| serde::de::Error::custom(format!("{len} elements, more than the limit of {MAX}")))
    }
}

/// Declares a string newtype whose length and characters are checked on construction, on SCALE
/// decode and on JSON deserialization alike.
macro_rules! bounded_string {
    ($(#[$meta:meta])* $name:ident, max = $max:expr, check = $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            #[allow(dead_code)]
            pub const MAX_LEN: usize = $max;

            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, $crate::codec::TextError> {
                let value = value.into();
                if value.is_empty() {
                    return Err($crate::codec::TextError::Empty { kind: stringify!($name) });
                }
                if value.len() > $max {
                    return Err($crate::codec::TextError::TooLong {
                        kind: stringify!($name),
                        len: value.len(),
                        max: $max,
                    });
                }
                let check: fn(&str) -> Result<(), &'static str> = $check;
                if let Err(reason) = check(&value) {
                    return Err($crate::codec::TextError::Invalid {
                        kind: stringify!($name),
                        value: $crate::codec::excerpt(&value),
                        reason,
                    });
                }
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::codec::TextError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl parity_scale_codec::Encode for $name {
            fn size_hint(&self) -> usize {
                self.0.size_hint()
            }
            fn encode_to<W: parity_scale_codec::Output + ?Sized>(&self, dest: &mut W) {
                self.0.encode_to(dest)
            }
        }

        impl parity_scale_codec::Decode for $name {
            fn decode<I: parity_scale_codec::Input>(
                input: &mut I,
            ) -> Result<Self, parity_scale_codec::Error> {
                let len = $crate::codec::decode_len(
                    input,
                    $max,
                    concat!(stringify!($name), " longer than its limit"),
                )?;
                let mut bytes = vec![0u8; len];
                input.read(&mut bytes)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    parity_scale_codec::Error::from(concat!(stringify!($name), " is not UTF-8"))
                })?;
                Self::new(text).map_err(|_| {
                    parity_scale_codec::Error::from(concat!(
                        stringify!($name),
                        " has characters it may not have"
                    ))
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(text).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use bounded_string;

/// Why a bounded string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} bytes long, more than the limit of {max}")]
    TooLong { kind: &'static str, len: usize, max: usize },
    #[error("{kind} `{value}` is invalid: {reason}")]
    Invalid { kind: &'static str, value: String, reason: &'static str },
}

/// The first 80 characters of `text`, for error messages.
pub fn excerpt(text: &str) -> String {
    excerpt_of(text, 80)
}

/// The first `max_chars` characters of `text`, with `…` if it was longer.
pub fn excerpt_of(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Accepts printable text without control characters.
pub(crate) fn printable(text: &str) -> Result<(), &'static str> {
    if text.chars().any(char::is_control) {
        Err("contains a control character")
    } else {
        Ok(())
    }
}

/// Helper for fixed-size byte arrays shown as `0x`-prefixed hex in JSON.
macro_rules! hex_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, parity_scale_codec::Encode, parity_scale_codec::Decode)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub fn to_hex(&self) -> String {
                format!("0x{}", hex::encode(self.0))
            }

            pub fn from_hex(text: &str) -> Result<Self, $crate::codec::TextError> {
                let digits = text.strip_prefix("0x").unwrap_or(text);
                let mut out = [0u8; $len];
                hex::decode_to_slice(digits, &mut out).map_err(|_| $crate::codec::TextError::Invalid {
                    kind: stringify!($name),
                    value: $crate::codec::excerpt(text),
                    reason: concat!("expected ", stringify!($len), " bytes as hex"),
                })?;
                Ok(Self(out))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::from_hex(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use hex_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    bounded_string!(Tiny, max = 4, check = printable);

    #[test]
    fn bounded_string_limits_hold_on_every_path() {
        assert!(Tiny::new("abcd").is_ok());
        assert_eq!(Tiny::new("abcde").unwrap_err(), TextError::TooLong { kind: "Tiny", len: 5, max: 4 });
        assert!(matches!(Tiny::new(""), Err(TextError::Empty { .. })));
        assert!(matches!(Tiny::new("a\nb"), Err(TextError::Invalid { .. })));
        // SCALE: a too-long string encoded by someone else is refused at decode time.
        let long = "abcdef".to_string().encode();
        assert!(decode_exact::<Tiny>(&long).is_err());
        let ok = "abc".to_string().encode();
        assert_eq!(decode_exact::<Tiny>(&ok).unwrap().as_str(), "abc");
        // Trailing bytes are refused.
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(decode_exact::<Tiny>(&trailing).is_err());
        // JSON too.
        assert!(serde_json::from_str::<Tiny>("\"abcdef\"").is_err());
    }

    #[test]
    fn bounded_vec_refuses_claimed_lengths_over_the_limit() {
        let v: Vec<u8> = vec![1, 2, 3];
        assert!(decode_exact::<BoundedVec<u8, 3>>(&v.encode()).is_ok());
        assert!(decode_exact::<BoundedVec<u8, 2>>(&v.encode()).is_err());
        // A claimed length of u32::MAX with no data behind it fails without allocating it.
        let bogus = Compact(u32::MAX).encode();
        assert!(decode_exact::<BoundedVec<u64, { usize::MAX }>>(&bogus).is_err());
    }
}
