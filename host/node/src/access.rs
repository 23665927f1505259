//! Who may do what: the admin token and namespace tokens.
//!
//! A token is 32 random bytes from the operating system, shown once as
//! `aether_` + 64 hex digits and never stored: the node keeps only its blake3
//! hash ([`TokenHash`]) and compares hashes in constant time (blake3's `Hash`
//! equality is constant-time), so neither the state file nor the timing of a
//! refusal gives a token away.
//!
//! The admin token creates namespaces and issues namespace tokens; a
//! namespace token reaches its own namespace and nothing else.

use std::fmt;

use serde::{Deserialize, Serialize};

use aether_core::namespace::Namespace;

/// What every token starts with, so a leaked one is easy to spot.
const PREFIX: &str = "aether_";

/// A freshly issued token, in clear. Shown to the caller once.
pub struct Token(String);

impl Token {
    /// What every token starts with.
    pub const PREFIX: &'static str = PREFIX;

    /// A new random token.
    pub fn generate() -> std::io::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self(format!("{PREFIX}{hex}")))
    }

    /// The token as the caller must present it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash the node keeps instead of the token.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The blake3 hash of a token; equality is constant-time.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(blake3::Hash);

impl TokenHash {
    /// The hash of a presented token.
    pub fn of(token: &str) -> Self {
        Self(blake3::hash(token.as_bytes()))
    }

    /// The token's id: the first 16 hex digits of its hash. It names the
    /// token (to revoke it) without giving it away: the token is 256
    /// random bits, and the id is a part of its hash.
    pub fn id(&self) -> String {
        self.0.to_hex()[..TOKEN_ID_LEN].to_owned()
    }
}

/// The length of a token id, in hex digits.
const TOKEN_ID_LEN: usize = 16;

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(…)")
    }
}

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        blake3::Hash::from_hex(&hex)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The holder of the admin token: every namespace, and administration.
    Admin,
    /// The holder of a token of this namespace: this namespace only.
    Tenant(Namespace),
}

impl Principal {
    /// Whether this principal may use `namespace`.
    pub fn may_use(&self, namespace: &Namespace) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant(own) => own == namespace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_kept_only_as_hashes() {
        let (a, b) = (Token::generate().unwrap(), Token::generate().unwrap());
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.as_str().starts_with(PREFIX));
        assert_eq!(a.as_str().len(), PREFIX.len() + 64);
        assert_eq!(a.hash(), TokenHash::of(a.as_str()));
        assert_ne!(a.hash(), b.hash());
        let stored = serde_json::to_string(&a.hash()).unwrap();
        assert!(!stored.contains(&a.as_str()[PREFIX.len()..]));
        let back: TokenHash = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, a.hash());
        assert_eq!(format!("{a:?}"), "Token(…)");
    }

    #[test]
    fn a_token_id_is_a_stable_prefix_of_its_hash() {
        let token = Token::generate().unwrap();
        let id = token.hash().id();
        assert_eq!(id.len(), TOKEN_ID_LEN);
        assert_eq!(id, TokenHash::of(token.as_str()).id());
        assert!(token.hash().0.to_hex().starts_with(&id));
        assert!(!token.as_str().contains(&id));
    }

    #[test]
    fn a_tenant_reaches_only_its_own_namespace() {
        let (a, b): (Namespace, Namespace) = ("a".parse().unwrap(), "b".parse().unwrap());
        assert!(Principal::Tenant(a.clone()).may_use(&a));
        assert!(!Principal::Tenant(a.clone()).may_use(&b));
        assert!(Principal::Admin.may_use(&b));
    }
}
