//! Encoding of commands and events as `(type name, JSON data)` pairs.
//!
//! This module implements the [wire format](crate#wire-format): a serde enum
//! value becomes its variant name plus the JSON of the variant's content, and
//! back. Both directions stream straight between the Rust value and the JSON
//! bytes; no `serde_json::Value` is built, because decoding sits on the replay
//! path (millions of events per second).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum Event {
//!     Deposited { amount: u64 },
//!     Closed,
//! }
//!
//! let (type_name, data) = aether_guest::wire::encode(&Event::Deposited { amount: 70 }).unwrap();
//! assert_eq!(type_name, "Deposited");
//! assert_eq!(data, br#"{"amount":70}"#);
//! assert_eq!(aether_guest::wire::decode::<Event>("Closed", b"null").unwrap(), Event::Closed);
//! ```

mod de;
mod ser;
#[cfg(test)]
mod tests;

use serde::{Serialize, de::DeserializeOwned};

/// The content type of every payload this SDK produces, and the only one it reads.
pub const CONTENT_TYPE: &str = "application/json";

/// Why a value could not be encoded to, or decoded from, the wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The type name is not a variant of the target enum. For a command the
    /// caller sent something this aggregate does not know; for an event the
    /// stream was probably written by another component version.
    #[error("unknown type \"{type_name}\", expected one of {expected}")]
    UnknownType {
        /// The type name that was received.
        type_name: String,
        /// The variant names the target enum accepts, quoted and comma separated.
        expected: String,
    },
    /// The type name is known but `data` does not match its content. The
    /// message comes from `serde_json` and names the field and position.
    #[error("invalid data for \"{type_name}\": {message}")]
    InvalidData {
        /// The type name the data was decoded as.
        type_name: String,
        /// What was wrong with the data.
        message: String,
    },
    /// The value is not an externally tagged enum variant, so it has no type
    /// name. This is a bug in the command or event type: make it a plain enum.
    #[error("cannot encode {found}: commands and events must be externally tagged enums")]
    NotAnEnum {
        /// What kind of value was found instead, e.g. `a struct`.
        found: &'static str,
    },
    /// The variant's content could not be written as JSON (for example a map
    /// with non-string keys). This is a bug in the command or event type.
    #[error("cannot encode \"{type_name}\": {message}")]
    Encode {
        /// The variant being encoded.
        type_name: String,
        /// What `serde_json` reported.
        message: String,
    },
}

/// Encodes an enum value as its variant name and the JSON of its content.
///
/// A unit variant's data is `null`, a newtype variant's the JSON of the inner
/// value, a struct variant's a JSON object of its fields.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<(String, Vec<u8>), WireError> {
    let (type_name, data) = value.serialize(ser::VariantSerializer)?;
    Ok((type_name.to_owned(), data))
}

/// Decodes the enum variant `type_name` with content `data` (JSON).
///
/// The variant name is matched exactly as serde would (renames and aliases
/// respected); the content is deserialized straight from the bytes.
pub fn decode<T: DeserializeOwned>(type_name: &str, data: &[u8]) -> Result<T, WireError> {
    T::deserialize(de::VariantDeserializer::new(type_name, data))
        .map_err(|error| error.into_wire_error(type_name))
}

/// Decodes like [`decode`], with the type name as the bytes an `apply`
/// batch carries. A derived enum matches them as bytes, without checking
/// that they are UTF-8 (the host stores only UTF-8 names; a name that is
/// not is an unknown type); a hand-written `Deserialize` that asks for a
/// string gets one, checked.
pub(crate) fn decode_event<T: DeserializeOwned>(
    type_name: &[u8],
    data: &[u8],
) -> Result<T, WireError> {
    T::deserialize(de::VariantDeserializer::from_bytes(type_name, data))
        .map_err(|error| error.into_wire_error(&String::from_utf8_lossy(type_name)))
}

/// Whether `content_type` is JSON: `application/json`, in any case, optionally
/// followed by parameters such as `; charset=utf-8`.
pub fn is_json(content_type: &str) -> bool {
    if content_type == CONTENT_TYPE {
        return true;
    }
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(CONTENT_TYPE)
}
