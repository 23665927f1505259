//! Decoding: a `serde::Deserializer` that presents `(type name, JSON data)`
//! as an externally tagged enum, so the derived `Deserialize` of the command
//! or event enum picks the variant from the type name and reads the content
//! straight from the JSON bytes.

use std::fmt;

use serde::de::{self, DeserializeSeed, Visitor, value::BorrowedStrDeserializer};

use super::WireError;

/// The whole input: a variant name and its JSON content.
pub(super) struct VariantDeserializer<'de> {
    type_name: TypeName<'de>,
    data: &'de [u8],
}

/// A variant name, as text or as the bytes of a replay batch.
enum TypeName<'de> {
    Text(&'de str),
    Bytes(&'de [u8]),
}

impl<'de> VariantDeserializer<'de> {
    pub(super) fn new(type_name: &'de str, data: &'de [u8]) -> Self {
        Self {
            type_name: TypeName::Text(type_name),
            data,
        }
    }

    pub(super) fn from_bytes(type_name: &'de [u8], data: &'de [u8]) -> Self {
        Self {
            type_name: TypeName::Bytes(type_name),
            data,
        }
    }
}

/// A decoding failure, before it is given the type name for context.
#[derive(Debug)]
pub(super) enum Error {
    UnknownVariant(&'static [&'static str]),
    Message(String),
}

impl Error {
    pub(super) fn into_wire_error(self, type_name: &str) -> WireError {
        match self {
            Error::UnknownVariant(expected) => WireError::UnknownType {
                type_name: type_name.to_owned(),
                expected: quoted_list(expected),
            },
            Error::Message(message) => WireError::InvalidData {
                type_name: type_name.to_owned(),
                message,
            },
        }
    }
}

fn quoted_list(names: &[&str]) -> String {
    if names.is_empty() {
        return "nothing (the enum has no variants)".to_owned();
    }
    let quoted: Vec<String> = names.iter().map(|name| format!("\"{name}\"")).collect();
    quoted.join(", ")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownVariant(expected) => {
                write!(f, "unknown type, expected one of {}", quoted_list(expected))
            }
            Error::Message(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Message(msg.to_string())
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Error::UnknownVariant(expected)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Message(error.to_string())
    }
}

impl<'de> de::Deserializer<'de> for VariantDeserializer<'de> {
    type Error = Error;

    /// Whatever the target asks for, offer an enum: a struct or map target
    /// then fails with serde's "invalid type: enum" message.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

impl<'de> de::EnumAccess<'de> for VariantDeserializer<'de> {
    type Error = Error;
    type Variant = Content<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Content<'de>), Error> {
        let variant = match self.type_name {
            TypeName::Text(name) => {
                seed.deserialize(BorrowedStrDeserializer::<Error>::new(name))?
            }
            TypeName::Bytes(name) => seed.deserialize(NameBytes(name))?,
        };
        Ok((variant, Content { data: self.data }))
    }
}

/// A variant name as bytes: offered as bytes to an identifier (what a
/// derived enum asks for, and matches without a UTF-8 check), as a checked
/// string to anything else.
struct NameBytes<'de>(&'de [u8]);

impl<'de> de::Deserializer<'de> for NameBytes<'de> {
    type Error = Error;

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.0)
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match std::str::from_utf8(self.0) {
            Ok(name) => visitor.visit_borrowed_str(name),
            Err(_) => visitor.visit_borrowed_bytes(self.0),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum ignored_any
    }
}

/// The variant's content: the JSON bytes.
pub(super) struct Content<'de> {
    data: &'de [u8],
}

impl<'de> Content<'de> {
    /// Runs `read` on a JSON deserializer over the data and checks that
    /// nothing but whitespace follows the value.
    fn read<T>(
        self,
        read: impl FnOnce(
            &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
        ) -> serde_json::Result<T>,
    ) -> Result<T, Error> {
        let mut json = serde_json::Deserializer::from_slice(self.data);
        let value = read(&mut json)?;
        json.end()?;
        Ok(value)
    }
}

impl<'de> de::VariantAccess<'de> for Content<'de> {
    type Error = Error;

    /// A unit variant carries `null`; empty data and `{}` are accepted too,
    /// since that is what other languages produce for an event without fields.
    fn unit_variant(self) -> Result<(), Error> {
        let trimmed = self.data.trim_ascii();
        if trimmed.is_empty() {
            return Ok(());
        }
        self.read(|json| de::Deserializer::deserialize_any(json, UnitContent))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        self.read(|json| seed.deserialize(json))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.read(|json| de::Deserializer::deserialize_tuple(json, len, visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.read(|json| de::Deserializer::deserialize_struct(json, "", fields, visitor))
    }
}

/// Accepts `null` or an empty object as the content of a unit variant.
struct UnitContent;

impl<'de> Visitor<'de> for UnitContent {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null (the variant has no content)")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match map.next_key::<de::IgnoredAny>()? {
            None => Ok(()),
            Some(_) => Err(de::Error::invalid_length(1, &"an empty object")),
        }
    }
}
