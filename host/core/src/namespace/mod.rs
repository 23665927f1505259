//! Validated names: [`Namespace`], [`AggregateType`] and [`AggregateId`].
//!
//! Every name that the host later turns into a store key, a NATS subject, a
//! JetStream stream name or a directory passes through this module first, so
//! the rest of the host never has to escape or re-check a name. The rules are
//! chosen so that a valid name is safe in all of those places at once: no `.`
//! (the NATS subject separator), no `*` or `>` (NATS wildcards), no `/` or `\`
//! (path separators), no whitespace and nothing outside ASCII.
//!
//! | Kind | Length | Allowed characters | First character |
//! |---|---|---|---|
//! | [`Namespace`] (e.g. `bank`) | 1–64 bytes | `a`–`z`, `0`–`9`, `-`, `_` | a letter or digit |
//! | [`AggregateType`] (e.g. `bank-account`) | 1–64 bytes | `a`–`z`, `0`–`9`, `-`, `_` | a letter or digit |
//! | [`AggregateId`] (e.g. `acc-1`, `user@example:42`) | 1–128 bytes | `a`–`z`, `A`–`Z`, `0`–`9`, `-`, `_`, `:`, `@` | any allowed character |
//!
//! A rejected name yields an [`InvalidName`] that says which kind of name was
//! wrong, what the first problem is and where it is (`position` is the 0-based
//! index of the offending character), for example
//! `namespace "a.b" contains '.' at position 1: use lowercase letters, digits, '-' or '_'`.
//!
//! **Architecture Invariant:** a value of these types is always valid; there is
//! no way to build one without going through the validator (deserialisation
//! included).
//!
//! [`layout`] is the one place that turns these names into store keys, bus
//! subjects and directories.

pub mod layout;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which kind of name a validation error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NameKind {
    /// A [`Namespace`].
    Namespace,
    /// An [`AggregateType`].
    AggregateType,
    /// An [`AggregateId`].
    AggregateId,
}

impl NameKind {
    /// The longest valid name of this kind, in bytes.
    pub const fn max_len(self) -> usize {
        match self {
            NameKind::Namespace | NameKind::AggregateType => 64,
            NameKind::AggregateId => 128,
        }
    }

    /// The characters a name of this kind may use, in words, for error messages.
    pub const fn allowed(self) -> &'static str {
        match self {
            NameKind::Namespace | NameKind::AggregateType => {
                "lowercase letters, digits, '-' or '_'"
            }
            NameKind::AggregateId => "letters, digits, '-', '_', ':' or '@'",
        }
    }

    const fn allows_uppercase(self) -> bool {
        matches!(self, NameKind::AggregateId)
    }

    const fn allows_id_punctuation(self) -> bool {
        matches!(self, NameKind::AggregateId)
    }

    /// Whether the name must start with a letter or digit.
    const fn requires_alphanumeric_start(self) -> bool {
        !matches!(self, NameKind::AggregateId)
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Namespace => "namespace",
            NameKind::AggregateType => "aggregate type",
            NameKind::AggregateId => "aggregate id",
        })
    }
}

/// Why a name was rejected. Only the first problem found is reported.
///
/// The caller should show the message to whoever supplied the name (HTTP 400):
/// retrying with the same name fails again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidName {
    /// The name has no characters.
    #[error("{kind} is empty: use 1 to {} {}", .kind.max_len(), .kind.allowed())]
    Empty {
        /// Which kind of name.
        kind: NameKind,
    },
    /// The name is longer than [`NameKind::max_len`] bytes.
    #[error("{kind} is {len} bytes long, the maximum is {max}: shorten it")]
    TooLong {
        /// Which kind of name.
        kind: NameKind,
        /// Length of the rejected name in bytes.
        len: usize,
        /// The maximum length in bytes.
        max: usize,
    },
    /// The name contains `.`, the NATS subject separator.
    #[error("{kind} {name:?} contains '.' at position {position}: use {}", .kind.allowed())]
    Dot {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
        /// 0-based index of the character.
        position: usize,
    },
    /// The name contains a NATS wildcard, `*` or `>`.
    #[error("{kind} {name:?} contains the wildcard {character:?} at position {position}: use {}", .kind.allowed())]
    Wildcard {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
        /// The offending character.
        character: char,
        /// 0-based index of the character.
        position: usize,
    },
    /// The name contains whitespace.
    #[error("{kind} {name:?} contains whitespace {character:?} at position {position}: use {}", .kind.allowed())]
    Whitespace {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
        /// The offending character.
        character: char,
        /// 0-based index of the character.
        position: usize,
    },
    /// The name contains a character outside ASCII.
    #[error("{kind} {name:?} contains the non-ASCII character {character:?} at position {position}: use {}", .kind.allowed())]
    NonAscii {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
        /// The offending character.
        character: char,
        /// 0-based index of the character.
        position: usize,
    },
    /// The name contains a path separator, `/` or `\`.
    #[error("{kind} {name:?} contains the path separator {character:?} at position {position}: use {}", .kind.allowed())]
    PathSeparator {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
        /// The offending character.
        character: char,
        /// 0-based index of the character.
        position: usize,
    },
    /// The name contains an uppercase letter where only lowercase is allowed.
    #[error("{kind} {name:?} contains the uppercase letter {character:?} at position {position}: use {}", .kind.allowed())]
    Uppercase {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
        /// The offending character.
        character: char,
        /// 0-based index of the character.
        position: usize,
    },
    /// The name starts with `-` or `_` where it must start with a letter or digit.
    #[error("{kind} {name:?} starts with {character:?}: start it with a lowercase letter or digit")]
    InvalidStart {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
        /// The offending first character.
        character: char,
    },
    /// The name contains some other character that is not allowed.
    #[error("{kind} {name:?} contains {character:?} at position {position}: use {}", .kind.allowed())]
    OtherCharacter {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected name.
        name: String,
        /// The offending character.
        character: char,
        /// 0-based index of the character.
        position: usize,
    },
}

impl InvalidName {
    /// Which kind of name was rejected.
    pub fn kind(&self) -> NameKind {
        match self {
            InvalidName::Empty { kind }
            | InvalidName::TooLong { kind, .. }
            | InvalidName::Dot { kind, .. }
            | InvalidName::Wildcard { kind, .. }
            | InvalidName::Whitespace { kind, .. }
            | InvalidName::NonAscii { kind, .. }
            | InvalidName::PathSeparator { kind, .. }
            | InvalidName::Uppercase { kind, .. }
            | InvalidName::InvalidStart { kind, .. }
            | InvalidName::OtherCharacter { kind, .. } => *kind,
        }
    }
}

/// Checks `name` against the rules for `kind`; the one validator behind every
/// name type of this module.
fn validate(kind: NameKind, name: &str) -> Result<(), InvalidName> {
    if name.is_empty() {
        return Err(InvalidName::Empty { kind });
    }
    let max = kind.max_len();
    if name.len() > max {
        return Err(InvalidName::TooLong {
            kind,
            len: name.len(),
            max,
        });
    }
    for (position, character) in name.chars().enumerate() {
        let owned = || name.to_owned();
        let error = match character {
            'a'..='z' | '0'..='9' => continue,
            'A'..='Z' if kind.allows_uppercase() => continue,
            ':' | '@' if kind.allows_id_punctuation() => continue,
            '-' | '_' if position == 0 && kind.requires_alphanumeric_start() => {
                InvalidName::InvalidStart {
                    kind,
                    name: owned(),
                    character,
                }
            }
            '-' | '_' => continue,
            'A'..='Z' => InvalidName::Uppercase {
                kind,
                name: owned(),
                character,
                position,
            },
            '.' => InvalidName::Dot {
                kind,
                name: owned(),
                position,
            },
            '*' | '>' => InvalidName::Wildcard {
                kind,
                name: owned(),
                character,
                position,
            },
            '/' | '\\' => InvalidName::PathSeparator {
                kind,
                name: owned(),
                character,
                position,
            },
            c if c.is_whitespace() => InvalidName::Whitespace {
                kind,
                name: owned(),
                character,
                position,
            },
            c if !c.is_ascii() => InvalidName::NonAscii {
                kind,
                name: owned(),
                character,
                position,
            },
            _ => InvalidName::OtherCharacter {
                kind,
                name: owned(),
                character,
                position,
            },
        };
        return Err(error);
    }
    Ok(())
}

/// Defines a validated string newtype with the usual conversions.
macro_rules! validated_name {
    ($(#[$doc:meta])* $ty:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Validates `name`; see the [module documentation](self) for the rules.
            pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
                let name = name.into();
                validate($kind, &name)?;
                Ok(Self(name))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The name as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $ty {
            type Err = InvalidName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = InvalidName;

            fn try_from(name: String) -> Result<Self, Self::Error> {
                Self::new(name)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = InvalidName;

            fn try_from(name: &str) -> Result<Self, Self::Error> {
                Self::new(name)
            }
        }

        impl From<$ty> for String {
            fn from(name: $ty) -> String {
                name.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

validated_name!(
    /// A tenant's namespace (e.g. `bank`): the unit of isolation. Streams,
    /// subjects, directories and limits of one namespace are never shared with
    /// another. 1–64 bytes of `a`–`z`, `0`–`9`, `-`, `_`, starting with a
    /// letter or digit.
    Namespace,
    NameKind::Namespace
);

validated_name!(
    /// The type of an aggregate (e.g. `bank-account`), which selects the
    /// component that decides its commands. Same rules as [`Namespace`].
    AggregateType,
    NameKind::AggregateType
);

validated_name!(
    /// The identity of one aggregate within its type (e.g. `acc-1`).
    /// 1–128 bytes of ASCII letters (either case), digits, `-`, `_`, `:`, `@`.
    AggregateId,
    NameKind::AggregateId
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Validates each name as `kind`; the expectation is `OK` or the error
    /// message, with `KIND` and `ALLOWED` standing for the kind's name and the
    /// "use …" hint.
    fn check(kind: NameKind, cases: &[(&str, &str)]) {
        for (name, expected) in cases {
            let expected = expected
                .replace("KIND", &kind.to_string())
                .replace("ALLOWED", &format!("use {}", kind.allowed()));
            let result = validate(kind, name);
            let actual = match &result {
                Ok(()) => "OK".to_owned(),
                Err(error) => error.to_string(),
            };
            assert_eq!(actual, expected, "{kind} {name:?}");
            if let Err(error) = result {
                assert_eq!(error.kind(), kind, "{name:?}");
            }
        }
    }

    #[test]
    fn namespace_and_aggregate_type_rules() {
        let (longest, too_long) = ("a".repeat(64), "a".repeat(65));
        for kind in [NameKind::Namespace, NameKind::AggregateType] {
            check(
                kind,
                &[
                    ("bank", "OK"),
                    ("bank-account", "OK"),
                    ("tenant_42", "OK"),
                    ("0day", "OK"),
                    ("a", "OK"),
                    (&longest, "OK"),
                    (
                        "",
                        "KIND is empty: use 1 to 64 lowercase letters, digits, '-' or '_'",
                    ),
                    (
                        &too_long,
                        "KIND is 65 bytes long, the maximum is 64: shorten it",
                    ),
                    ("a.b", r#"KIND "a.b" contains '.' at position 1: ALLOWED"#),
                    (
                        "a*",
                        r#"KIND "a*" contains the wildcard '*' at position 1: ALLOWED"#,
                    ),
                    (
                        "ab>",
                        r#"KIND "ab>" contains the wildcard '>' at position 2: ALLOWED"#,
                    ),
                    (
                        "a b",
                        r#"KIND "a b" contains whitespace ' ' at position 1: ALLOWED"#,
                    ),
                    (
                        "a\tb",
                        r#"KIND "a\tb" contains whitespace '\t' at position 1: ALLOWED"#,
                    ),
                    (
                        "a\u{a0}",
                        r#"KIND "a\u{a0}" contains whitespace '\u{a0}' at position 1: ALLOWED"#,
                    ),
                    (
                        "café",
                        r#"KIND "café" contains the non-ASCII character 'é' at position 3: ALLOWED"#,
                    ),
                    (
                        "a/b",
                        r#"KIND "a/b" contains the path separator '/' at position 1: ALLOWED"#,
                    ),
                    (
                        "a\\b",
                        r#"KIND "a\\b" contains the path separator '\\' at position 1: ALLOWED"#,
                    ),
                    (
                        "Bank",
                        r#"KIND "Bank" contains the uppercase letter 'B' at position 0: ALLOWED"#,
                    ),
                    (
                        "-bank",
                        r#"KIND "-bank" starts with '-': start it with a lowercase letter or digit"#,
                    ),
                    (
                        "_bank",
                        r#"KIND "_bank" starts with '_': start it with a lowercase letter or digit"#,
                    ),
                    ("a:b", r#"KIND "a:b" contains ':' at position 1: ALLOWED"#),
                    ("a@b", r#"KIND "a@b" contains '@' at position 1: ALLOWED"#),
                    ("a\0", r#"KIND "a\0" contains '\0' at position 1: ALLOWED"#),
                    (
                        "a.b c",
                        r#"KIND "a.b c" contains '.' at position 1: ALLOWED"#,
                    ),
                ],
            );
        }
    }

    #[test]
    fn aggregate_id_rules() {
        let (longest, too_long) = ("A".repeat(128), "a".repeat(129));
        check(
            NameKind::AggregateId,
            &[
                ("acc-1", "OK"),
                ("Acc-1", "OK"),
                ("user@example:42", "OK"),
                ("_private", "OK"),
                ("-x", "OK"),
                ("0190a5c4-7a1e-7cc0-9d2b-5c3e1f0a9b11", "OK"),
                (&longest, "OK"),
                (
                    "",
                    "KIND is empty: use 1 to 128 letters, digits, '-', '_', ':' or '@'",
                ),
                (
                    &too_long,
                    "KIND is 129 bytes long, the maximum is 128: shorten it",
                ),
                (
                    "acc.1",
                    r#"KIND "acc.1" contains '.' at position 3: ALLOWED"#,
                ),
                (
                    "acc*",
                    r#"KIND "acc*" contains the wildcard '*' at position 3: ALLOWED"#,
                ),
                (
                    ">",
                    r#"KIND ">" contains the wildcard '>' at position 0: ALLOWED"#,
                ),
                (
                    "acc 1",
                    r#"KIND "acc 1" contains whitespace ' ' at position 3: ALLOWED"#,
                ),
                (
                    "über",
                    r#"KIND "über" contains the non-ASCII character 'ü' at position 0: ALLOWED"#,
                ),
                (
                    "a/1",
                    r#"KIND "a/1" contains the path separator '/' at position 1: ALLOWED"#,
                ),
                (
                    "a\\1",
                    r#"KIND "a\\1" contains the path separator '\\' at position 1: ALLOWED"#,
                ),
                ("a#1", r#"KIND "a#1" contains '#' at position 1: ALLOWED"#),
            ],
        );
    }

    #[test]
    fn length_counts_bytes_not_characters() {
        // 33 two-byte characters: 66 bytes although only 33 characters.
        let error = Namespace::new("é".repeat(33)).unwrap_err();
        assert_eq!(
            error,
            InvalidName::TooLong {
                kind: NameKind::Namespace,
                len: 66,
                max: 64
            }
        );
    }

    #[test]
    fn each_type_validates_as_its_own_kind() {
        assert_eq!(
            Namespace::new("a.b").unwrap_err().kind(),
            NameKind::Namespace
        );
        assert_eq!(
            AggregateType::new("a.b").unwrap_err().kind(),
            NameKind::AggregateType
        );
        assert_eq!(
            AggregateId::new("a.b").unwrap_err().kind(),
            NameKind::AggregateId
        );
        assert!(Namespace::new("Acc").is_err());
        assert!(AggregateType::new("Acc").is_err());
        assert!(AggregateId::new("Acc").is_ok());
    }

    #[test]
    fn conversions_round_trip() {
        let ns: Namespace = "bank".parse().unwrap();
        assert_eq!(ns.as_str(), "bank");
        assert_eq!(ns.to_string(), "bank");
        assert_eq!(ns, "bank");
        assert_eq!(String::from(ns.clone()), "bank");
        assert_eq!(Namespace::try_from("bank".to_owned()).unwrap(), ns);
        assert!("a b".parse::<AggregateId>().is_err());
    }

    #[test]
    fn serde_validates_on_deserialize() {
        let id = AggregateId::new("acc-1").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"acc-1\"");
        assert_eq!(serde_json::from_str::<AggregateId>(&json).unwrap(), id);
        let error = serde_json::from_str::<Namespace>("\"a.b\"").unwrap_err();
        assert!(
            error
                .to_string()
                .contains(r#"namespace "a.b" contains '.' at position 1"#),
            "{error}"
        );
    }
}
