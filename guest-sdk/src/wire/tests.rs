use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{WireError, decode, decode_event, encode, is_json};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Event {
    Opened {
        owner: String,
    },
    Deposited {
        amount: u64,
    },
    Closed,
    Renamed(String),
    Moved(i32, i32),
    #[serde(rename = "limit-changed", alias = "LimitSet")]
    LimitChanged {
        limit: Option<u64>,
    },
    Tagged(BTreeMap<String, u32>),
    Empty {},
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Command {
    OpenAccount { owner: String },
    CloseAccount,
}

fn round_trip(event: Event, type_name: &str, data: &str) {
    let (encoded_type, encoded_data) = encode(&event).unwrap();
    assert_eq!(encoded_type, type_name);
    assert_eq!(String::from_utf8(encoded_data).unwrap(), data);
    assert_eq!(decode::<Event>(type_name, data.as_bytes()).unwrap(), event);
    assert_eq!(
        decode_event::<Event>(type_name.as_bytes(), data.as_bytes()).unwrap(),
        event
    );
}

#[test]
fn struct_variant_is_an_object_of_its_fields() {
    round_trip(
        Event::Opened {
            owner: "Ada \"L\"".into(),
        },
        "Opened",
        r#"{"owner":"Ada \"L\""}"#,
    );
    round_trip(
        Event::Deposited { amount: 70 },
        "Deposited",
        r#"{"amount":70}"#,
    );
    round_trip(Event::Empty {}, "Empty", "{}");
}

#[test]
fn unit_variant_is_null() {
    round_trip(Event::Closed, "Closed", "null");
}

#[test]
fn newtype_variant_is_the_inner_value() {
    round_trip(Event::Renamed("Bob".into()), "Renamed", r#""Bob""#);
    let tags = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
    round_trip(Event::Tagged(tags), "Tagged", r#"{"a":1,"b":2}"#);
}

#[test]
fn tuple_variant_is_an_array() {
    round_trip(Event::Moved(1, -2), "Moved", "[1,-2]");
}

#[test]
fn renames_and_aliases_are_respected() {
    round_trip(
        Event::LimitChanged { limit: None },
        "limit-changed",
        r#"{"limit":null}"#,
    );
    assert_eq!(
        decode::<Event>("LimitSet", br#"{"limit":5}"#).unwrap(),
        Event::LimitChanged { limit: Some(5) }
    );
    let (type_name, data) = encode(&Command::OpenAccount {
        owner: "Ada".into(),
    })
    .unwrap();
    assert_eq!(
        (type_name.as_str(), data.as_slice()),
        ("open-account", &br#"{"owner":"Ada"}"#[..])
    );
    assert_eq!(
        decode::<Command>("close-account", b"null").unwrap(),
        Command::CloseAccount
    );
}

#[test]
fn encoding_matches_serde_json_content() {
    // The data must be exactly what serde_json writes for the content, so
    // other languages can rely on plain JSON.
    let event = Event::Opened {
        owner: "é\n\u{1}".into(),
    };
    let (_, data) = encode(&event).unwrap();
    let expected = serde_json::to_vec(&serde_json::json!({ "owner": "é\n\u{1}" })).unwrap();
    assert_eq!(data, expected);
}

#[test]
fn unit_variant_accepts_empty_data_and_empty_object() {
    for data in ["", "  ", "{}", " { } ", "null "] {
        assert_eq!(
            decode::<Event>("Closed", data.as_bytes()).unwrap(),
            Event::Closed,
            "{data:?}"
        );
    }
}

#[test]
fn decode_tolerates_whitespace_and_field_order() {
    let event = decode::<Event>("Opened", b" { \"owner\" : \"Ada\" }\n").unwrap();
    assert_eq!(
        event,
        Event::Opened {
            owner: "Ada".into()
        }
    );
}

fn decode_error(type_name: &str, data: &str) -> String {
    let error = decode::<Event>(type_name, data.as_bytes()).unwrap_err();
    let from_bytes = decode_event::<Event>(type_name.as_bytes(), data.as_bytes()).unwrap_err();
    assert_eq!(
        error, from_bytes,
        "a replay batch's names decode as text does"
    );
    error.to_string()
}

#[test]
fn unknown_type_names_the_type_and_the_choices() {
    let error = decode::<Command>("Foo", b"{}").unwrap_err();
    assert_eq!(
        error,
        WireError::UnknownType {
            type_name: "Foo".into(),
            expected: r#""open-account", "close-account""#.into(),
        }
    );
    assert_eq!(
        error.to_string(),
        r#"unknown type "Foo", expected one of "open-account", "close-account""#
    );
}

#[test]
fn invalid_data_names_the_type_and_the_problem() {
    assert_eq!(
        decode_error("Deposited", "{}"),
        r#"invalid data for "Deposited": missing field `amount` at line 1 column 2"#
    );
    assert_eq!(
        decode_error("Deposited", r#"{"amount":-1}"#),
        r#"invalid data for "Deposited": invalid value: integer `-1`, expected u64 at line 1 column 12"#
    );
    assert!(decode_error("Deposited", r#"{"amount":1} x"#).contains("trailing characters"));
    assert!(decode_error("Deposited", "").contains("EOF while parsing"));
    assert!(
        decode_error("Closed", "1")
            .starts_with(r#"invalid data for "Closed": invalid type: integer `1`, expected null"#)
    );
    assert!(
        decode_error("Closed", r#"{"a":1}"#).contains("invalid length 1, expected an empty object")
    );
    assert!(decode_error("Renamed", "{}").contains("expected a string"));
    assert!(decode_error("Moved", "[1]").contains("invalid length 1"));
    assert!(decode_error("Opened", "\u{ff}").starts_with(r#"invalid data for "Opened""#));
}

#[test]
fn names_as_bytes_match_as_text_does() {
    for (name, data) in [
        ("limit-changed", "{\"limit\":1}"),
        ("LimitSet", "{\"limit\":null}"),
    ] {
        assert_eq!(
            decode_event::<Event>(name.as_bytes(), data.as_bytes()).unwrap(),
            decode::<Event>(name, data.as_bytes()).unwrap()
        );
    }
    assert_eq!(
        decode_event::<Command>(b"close-account", b"null").unwrap(),
        Command::CloseAccount
    );
    let error = decode_event::<Command>(b"Foo", b"{}").unwrap_err();
    assert_eq!(error, decode::<Command>("Foo", b"{}").unwrap_err());
    // A name that is not UTF-8 is an unknown type, named as best it can be.
    let error = decode_event::<Command>(b"F\xffo", b"{}").unwrap_err();
    assert!(
        matches!(&error, WireError::UnknownType { type_name, .. } if type_name == "F\u{fffd}o"),
        "{error:?}"
    );
}

#[test]
fn a_hand_written_enum_that_asks_for_its_name_as_a_string_gets_one() {
    /// Reads the variant name with `String`'s `Deserialize`.
    #[derive(Debug, PartialEq)]
    struct Named(String);

    impl<'de> Deserialize<'de> for Named {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Named;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an enum")
                }
                fn visit_enum<A: serde::de::EnumAccess<'de>>(
                    self,
                    data: A,
                ) -> Result<Named, A::Error> {
                    let (name, content) = data.variant::<String>()?;
                    serde::de::VariantAccess::unit_variant(content)?;
                    Ok(Named(name))
                }
            }
            deserializer.deserialize_enum("Named", &[], Visit)
        }
    }

    assert_eq!(
        decode_event::<Named>("Gesch\u{e4}ft".as_bytes(), b"null").unwrap(),
        Named("Gesch\u{e4}ft".into())
    );
}

#[test]
fn decode_into_a_non_enum_fails() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct NotAnEnum {
        amount: u64,
    }
    let error = decode::<NotAnEnum>("Deposited", br#"{"amount":1}"#).unwrap_err();
    assert!(error.to_string().contains("invalid type: enum"), "{error}");
}

#[test]
fn encode_rejects_values_that_are_not_enum_variants() {
    #[derive(Serialize)]
    struct Deposited {
        amount: u64,
    }
    assert_eq!(
        encode(&Deposited { amount: 1 }).unwrap_err(),
        WireError::NotAnEnum { found: "a struct" }
    );
    assert_eq!(
        encode(&5u8).unwrap_err(),
        WireError::NotAnEnum { found: "a number" }
    );
    assert_eq!(
        encode(&Some(Event::Closed)).unwrap_err(),
        WireError::NotAnEnum { found: "Some(..)" }
    );
}

#[test]
fn encode_reports_content_that_is_not_json() {
    #[derive(Serialize)]
    enum Bad {
        Keyed(BTreeMap<(u8, u8), u8>),
    }
    let error = encode(&Bad::Keyed(BTreeMap::from([((1, 2), 3)]))).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(r#"cannot encode "Keyed": key must be a string"#),
        "{error}"
    );
}

#[test]
fn transparent_newtype_around_an_enum_encodes_the_enum() {
    #[derive(Serialize)]
    #[serde(transparent)]
    struct Wrapped(Event);
    let (type_name, data) = encode(&Wrapped(Event::Deposited { amount: 3 })).unwrap();
    assert_eq!(
        (type_name.as_str(), data.as_slice()),
        ("Deposited", &br#"{"amount":3}"#[..])
    );
}

#[test]
fn json_content_types() {
    assert!(is_json("application/json"));
    assert!(is_json("Application/JSON; charset=utf-8"));
    assert!(!is_json("application/cbor"));
    assert!(!is_json(""));
}
