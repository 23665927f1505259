//! What a subscription receives: its scope (one namespace, or every
//! namespace by explicit opt-in) and a filter on event type, aggregate type
//! and aggregate id.

use std::collections::BTreeSet;
use std::fmt;

use aether_core::namespace::{AggregateType, NameKind, Namespace};
use aether_store::RecordedEvent;

/// Which namespaces a subscription reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace: the normal case.
    Namespace(Namespace),
    /// Every namespace. Only for operators' tools; say why, it is logged.
    AllNamespaces {
        /// Why this subscription needs every tenant's events.
        reason: String,
    },
}

impl Scope {
    /// Whether `event` is inside the scope.
    pub fn contains(&self, event: &RecordedEvent) -> bool {
        match self {
            Scope::Namespace(namespace) => &event.stream.namespace == namespace,
            Scope::AllNamespaces { .. } => true,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Namespace(namespace) => write!(f, "namespace {namespace}"),
            Scope::AllNamespaces { .. } => f.write_str("every namespace"),
        }
    }
}

/// Which events of its scope a subscription receives; an empty filter (the
/// default) receives all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these event types.
    pub event_types: Option<BTreeSet<String>>,
    /// Only this aggregate type.
    pub aggregate_type: Option<AggregateType>,
    /// Only aggregate ids matching this pattern.
    pub aggregate_id: Option<IdPattern>,
}

impl Filter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|types| types.contains(&event.event_type))
            && self
                .aggregate_type
                .as_ref()
                .is_none_or(|t| *t == event.stream.aggregate_type)
            && self
                .aggregate_id
                .as_ref()
                .is_none_or(|p| p.matches(event.stream.aggregate_id.as_str()))
    }
}

/// An aggregate-id pattern: the characters of an id, where `*` stands for
/// any run of characters (`acc-*`, `*@example`, `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPattern(String);

/// A pattern that no aggregate id could match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aggregate-id pattern {pattern:?} is invalid: use {}, and `*` for any run of them", NameKind::AggregateId.allowed())]
pub struct InvalidPattern {
    /// The pattern.
    pub pattern: String,
}

impl IdPattern {
    /// Checks `pattern`: 1–128 bytes of aggregate-id characters and `*`.
    pub fn new(pattern: &str) -> Result<Self, InvalidPattern> {
        let literal = pattern.replace('*', "a");
        if aether_core::namespace::AggregateId::new(literal).is_err() {
            return Err(InvalidPattern {
                pattern: pattern.to_owned(),
            });
        }
        Ok(Self(pattern.to_owned()))
    }

    /// Whether `id` matches.
    pub fn matches(&self, id: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or("");
        let Some(mut rest) = id.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty(); // no `*`: an exact match
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_globs() {
        let cases = [
            ("acc-1", "acc-1", true),
            ("acc-1", "acc-12", false),
            ("acc-*", "acc-12", true),
            ("acc-*", "acc-", true),
            ("acc-*", "vip-1", false),
            ("*@example", "ada@example", true),
            ("*@example", "ada@example:2", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("ab*ba", "aba", false),
            ("*", "anything", true),
        ];
        for (pattern, id, expected) in cases {
            assert_eq!(
                IdPattern::new(pattern).unwrap().matches(id),
                expected,
                "{pattern} {id}"
            );
        }
        for bad in ["", "a.b*", "a b", "a/*", "é*"] {
            assert!(IdPattern::new(bad).is_err(), "{bad:?}");
        }
    }
}
