//! Encoding: a `serde::Serializer` that accepts only enum variants and
//! returns the variant name plus the JSON of the variant's content, written
//! directly by `serde_json` (no intermediate `Value`).

use std::fmt;

use serde::ser::{self, Impossible, Serialize};

use super::WireError;

/// The encoded variant: its name and its JSON content.
type Encoded = (&'static str, Vec<u8>);

pub(super) struct VariantSerializer;

/// An encoding failure, before it is given the variant name for context.
#[derive(Debug)]
pub(super) struct Error(WireError);

impl From<Error> for WireError {
    fn from(error: Error) -> Self {
        error.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    // Only reached when the value's own `Serialize` fails outside a variant.
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(WireError::Encode {
            type_name: String::new(),
            message: msg.to_string(),
        })
    }
}

fn not_an_enum(found: &'static str) -> Error {
    Error(WireError::NotAnEnum { found })
}

/// Appends the JSON of `value` to `out`, blaming `variant` on failure.
fn write_json<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    variant: &'static str,
    value: &T,
) -> Result<(), Error> {
    serde_json::to_writer(out, value).map_err(|error| {
        Error(WireError::Encode {
            type_name: variant.to_owned(),
            message: error.to_string(),
        })
    })
}

/// Generates the `serialize_*` methods of everything that is not an enum
/// variant, each failing with what it found.
macro_rules! reject {
    ($($method:ident($($arg:ty),*) = $found:literal;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Encoded, Error> {
            Err(not_an_enum($found))
        })*
    };
}

impl ser::Serializer for VariantSerializer {
    type Ok = Encoded;
    type Error = Error;
    type SerializeSeq = Impossible<Encoded, Error>;
    type SerializeTuple = Impossible<Encoded, Error>;
    type SerializeTupleStruct = Impossible<Encoded, Error>;
    type SerializeTupleVariant = Fields;
    type SerializeMap = Impossible<Encoded, Error>;
    type SerializeStruct = Impossible<Encoded, Error>;
    type SerializeStructVariant = Fields;

    reject! {
        serialize_bool(bool) = "a bool";
        serialize_i8(i8) = "a number";
        serialize_i16(i16) = "a number";
        serialize_i32(i32) = "a number";
        serialize_i64(i64) = "a number";
        serialize_i128(i128) = "a number";
        serialize_u8(u8) = "a number";
        serialize_u16(u16) = "a number";
        serialize_u32(u32) = "a number";
        serialize_u64(u64) = "a number";
        serialize_u128(u128) = "a number";
        serialize_f32(f32) = "a number";
        serialize_f64(f64) = "a number";
        serialize_char(char) = "a char";
        serialize_str(&str) = "a string";
        serialize_bytes(&[u8]) = "bytes";
        serialize_none() = "None";
        serialize_unit() = "()";
        serialize_unit_struct(&'static str) = "a unit struct";
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Encoded, Error> {
        Err(not_an_enum("Some(..)"))
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Encoded, Error> {
        Ok((variant, b"null".to_vec()))
    }

    /// A newtype struct around an enum (e.g. `#[serde(transparent)]`) is
    /// encoded as the enum.
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Encoded, Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Encoded, Error> {
        let mut data = Vec::with_capacity(32);
        write_json(&mut data, variant, value)?;
        Ok((variant, data))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(not_an_enum("a sequence"))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(not_an_enum("a tuple"))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(not_an_enum("a tuple struct"))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Fields, Error> {
        Ok(Fields::new(variant, b'['))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(not_an_enum("a map"))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(not_an_enum("a struct"))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Fields, Error> {
        Ok(Fields::new(variant, b'{'))
    }
}

/// The content of a tuple variant (a JSON array) or a struct variant (a JSON
/// object), written field by field in the same compact form `serde_json` uses.
pub(super) struct Fields {
    variant: &'static str,
    data: Vec<u8>,
}

impl Fields {
    fn new(variant: &'static str, open: u8) -> Self {
        let mut data = Vec::with_capacity(64);
        data.push(open);
        Self { variant, data }
    }

    /// Writes the separator before the next field (none before the first).
    fn separate(&mut self) {
        if self.data.len() > 1 {
            self.data.push(b',');
        }
    }

    fn close(mut self, close: u8) -> Result<Encoded, Error> {
        self.data.push(close);
        Ok((self.variant, self.data))
    }
}

impl ser::SerializeTupleVariant for Fields {
    type Ok = Encoded;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.separate();
        write_json(&mut self.data, self.variant, value)
    }

    fn end(self) -> Result<Encoded, Error> {
        self.close(b']')
    }
}

impl ser::SerializeStructVariant for Fields {
    type Ok = Encoded;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.separate();
        write_json(&mut self.data, self.variant, key)?;
        self.data.push(b':');
        write_json(&mut self.data, self.variant, value)
    }

    fn end(self) -> Result<Encoded, Error> {
        self.close(b'}')
    }
}
