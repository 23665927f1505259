//! The one place that turns names into store keys, bus subjects and
//! directories.
//!
//! Nothing else in the host builds a key, a subject or a path from a
//! namespace by hand: it calls these functions, so the isolation of one
//! namespace from another is decided here and only here. They need no
//! escaping because validated names never contain `/`, `.`, `*`, `>`,
//! whitespace or anything outside ASCII (see [`super`]).
//!
//! | What | Form | Example |
//! |---|---|---|
//! | store key of a stream | `namespace/aggregate-type/aggregate-id` | `bank/bank-account/acc-1` |
//! | bus subject of a stream's events | `aether.bus.namespace.aggregate-type.aggregate-id` | `aether.bus.bank.bank-account.acc-1` |
//! | bus subject filter of a namespace | `aether.bus.namespace.>` | `aether.bus.bank.>` |
//! | JetStream store subject of a stream | `prefix.events.namespace.aggregate-type.aggregate-id` | `aether.events.bank.bank-account.acc-1` |
//! | JetStream store subject filter of a namespace | `prefix.events.namespace.>` | `aether.events.bank.>` |
//! | JetStream stream of a namespace's events | `PREFIX_EVENTS_namespace` | `AETHER_EVENTS_bank` |
//! | JetStream KV bucket of the store's snapshots | `PREFIX_SNAPSHOTS` | `AETHER_SNAPSHOTS` |
//! | directory of a namespace under a base | `base/namespace` | `components/bank` |
//! | the node's registry stream of a namespace | `aether-system/registry/namespace` | `aether-system/registry/bank` |
//! | a durable subscriber's checkpoint stream | `aether-system/subscriber/namespace:name` | `aether-system/subscriber/bank:audit` |
//!
//! The node's own streams live in the reserved namespace [`SYSTEM_NAMESPACE`],
//! which no tenant can create.

use std::path::{Path, PathBuf};

use super::{AggregateId, AggregateType, InvalidName, Namespace};
use crate::event::StreamId;

/// The namespace of the node's own streams; no tenant may use it.
pub const SYSTEM_NAMESPACE: &str = "aether-system";

fn system_stream(aggregate_type: &str, id: AggregateId) -> StreamId {
    StreamId::new(
        Namespace::new(SYSTEM_NAMESPACE).expect("a valid namespace"),
        AggregateType::new(aggregate_type).expect("a valid aggregate type"),
        id,
    )
}

/// The stream that records `namespace`'s component registry.
pub fn registry_stream(namespace: &Namespace) -> StreamId {
    let id = AggregateId::new(namespace.as_str()).expect("a namespace is a valid aggregate id");
    system_stream("registry", id)
}

/// The stream whose snapshot is the checkpoint of subscriber `name` in
/// `namespace`. Names follow the aggregate-id rules.
pub fn subscriber_stream(namespace: &Namespace, name: &str) -> Result<StreamId, InvalidName> {
    AggregateId::new(name)?;
    let id = AggregateId::new(format!("{namespace}:{name}"))?;
    Ok(system_stream("subscriber", id))
}

/// The key of a stream in every store table: `namespace/type/id`.
///
/// Unambiguous because names never contain `/`, and it sorts all of one
/// namespace's streams together.
pub fn stream_key(stream: &StreamId) -> String {
    format!(
        "{}/{}/{}",
        stream.namespace, stream.aggregate_type, stream.aggregate_id
    )
}

/// The stream a [`stream_key`] names; `None` if it names none.
pub fn parse_stream_key(key: &str) -> Option<StreamId> {
    let mut parts = key.split('/');
    let stream = StreamId::new(
        Namespace::new(parts.next()?).ok()?,
        AggregateType::new(parts.next()?).ok()?,
        AggregateId::new(parts.next()?).ok()?,
    );
    parts.next().is_none().then_some(stream)
}

/// The bus subject a stream's events are published on (never one the
/// JetStream store captures: the bus and the store have their own subject
/// spaces).
pub fn bus_subject(stream: &StreamId) -> String {
    format!(
        "aether.bus.{}.{}.{}",
        stream.namespace, stream.aggregate_type, stream.aggregate_id
    )
}

/// The subject a JetStream store keeps a stream's events on; `prefix` is
/// the store's (stores sharing a server use different ones).
pub fn store_subject(prefix: &str, stream: &StreamId) -> String {
    format!(
        "{prefix}.events.{}.{}.{}",
        stream.namespace, stream.aggregate_type, stream.aggregate_id
    )
}

/// The subject filter that captures every event of `namespace` in a
/// JetStream store, and nothing of any other namespace.
pub fn store_namespace_subjects(prefix: &str, namespace: &Namespace) -> String {
    format!("{prefix}.events.{namespace}.>")
}

/// The first part of the JetStream store's stream and bucket names: the
/// prefix upper-cased, with `-` and `.` (not allowed or not wanted in a
/// stream name) turned into `_`.
fn store_name_prefix(prefix: &str) -> String {
    prefix.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// The JetStream stream that holds the events of `namespace`:
/// `<PREFIX>_EVENTS_<namespace>`, capturing [`store_namespace_subjects`].
///
/// Legal as a stream name because a namespace is only `a`–`z`, `0`–`9`,
/// `-` and `_` (no `.`, `*`, `>`, whitespace or path separator), and
/// injective: the namespace is appended verbatim after a part that is the
/// same for every namespace of a store, so two namespaces never share a
/// stream. (The prefix part is upper-case and the namespace lower-case,
/// and the names of one store never equal a bucket's stream, `KV_…`.)
pub fn store_stream_name(prefix: &str, namespace: &Namespace) -> String {
    format!("{}_EVENTS_{namespace}", store_name_prefix(prefix))
}

/// The single stream that held every namespace's events before the store
/// had a stream per namespace; only looked for, to refuse a server that
/// still has it (its subjects overlap every namespace stream's).
pub fn legacy_store_stream_name(prefix: &str) -> String {
    format!("{}_EVENTS", store_name_prefix(prefix))
}

/// The KV bucket that holds a JetStream store's snapshots.
pub fn store_snapshot_bucket(prefix: &str) -> String {
    format!("{}_SNAPSHOTS", store_name_prefix(prefix))
}

/// The stream a [`store_subject`] subject names; `None` if none.
pub fn parse_store_subject(prefix: &str, subject: &str) -> Option<StreamId> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix(".events.")?;
    let mut parts = rest.split('.');
    let stream = StreamId::new(
        Namespace::new(parts.next()?).ok()?,
        AggregateType::new(parts.next()?).ok()?,
        AggregateId::new(parts.next()?).ok()?,
    );
    parts.next().is_none().then_some(stream)
}

/// The bus subject filter that matches every event of every namespace (for
/// subscriptions that opted in to crossing namespaces).
pub const ALL_BUS_SUBJECTS: &str = "aether.bus.>";

/// The bus subject filter that matches every event of `namespace` and
/// nothing of any other namespace.
pub fn bus_namespace_subjects(namespace: &Namespace) -> String {
    format!("aether.bus.{namespace}.>")
}

/// The subject the owner of `shard` takes forwarded commands and reads
/// on, in a cluster whose NATS names start with `prefix`.
pub fn cluster_shard_subject(prefix: &str, shard: u32) -> String {
    format!("{prefix}.cluster.shard.{shard}")
}

/// The subject any node of a cluster takes commands on from NATS clients
/// (a queue group: one node routes each).
pub fn cluster_submit_subject(prefix: &str) -> String {
    format!("{prefix}.cluster.submit")
}

/// A cluster's key-value bucket `what` (`MEMBERS`, `LEADER`, `SHARDS`).
pub fn cluster_bucket(prefix: &str, what: &str) -> String {
    format!(
        "{}_CLUSTER_{what}",
        prefix.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// The directory of `namespace` under `base`: `base/namespace`. Never
/// outside `base`, since a namespace cannot contain a path separator or
/// be `.` or `..`.
pub fn namespace_dir(base: &Path, namespace: &Namespace) -> PathBuf {
    base.join(namespace.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> StreamId {
        StreamId::new(
            "bank".parse().unwrap(),
            "bank-account".parse().unwrap(),
            "acc-1".parse().unwrap(),
        )
    }

    #[test]
    fn stream_keys_round_trip_and_refuse_anything_else() {
        assert_eq!(stream_key(&account()), "bank/bank-account/acc-1");
        assert_eq!(parse_stream_key("bank/bank-account/acc-1"), Some(account()));
        for bad in [
            "bank/bank-account",
            "bank/bank-account/acc-1/x",
            "Bank/a/b",
            "../a/b",
            "",
        ] {
            assert_eq!(parse_stream_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn subjects_and_directories_stay_inside_their_namespace() {
        assert_eq!(
            bus_subject(&account()),
            "aether.bus.bank.bank-account.acc-1"
        );
        let subject = store_subject("t1", &account());
        assert_eq!(subject, "t1.events.bank.bank-account.acc-1");
        assert_eq!(parse_store_subject("t1", &subject), Some(account()));
        assert_eq!(parse_store_subject("aether", &subject), None);
        assert_eq!(
            bus_namespace_subjects(&"bank".parse().unwrap()),
            "aether.bus.bank.>"
        );
        assert_eq!(
            store_namespace_subjects("t1", &"bank".parse().unwrap()),
            "t1.events.bank.>"
        );
        let dir = namespace_dir(Path::new("/data/components"), &"bank".parse().unwrap());
        assert_eq!(dir, Path::new("/data/components/bank"));
        assert!(dir.starts_with("/data/components"));
    }

    #[test]
    fn store_stream_names_are_legal_and_one_per_namespace() {
        let ns = |name: &str| -> Namespace { name.parse().unwrap() };
        assert_eq!(
            store_stream_name("aether", &ns("bank")),
            "AETHER_EVENTS_bank"
        );
        assert_eq!(
            store_stream_name("my-app.x", &ns("aether-system")),
            "MY_APP_X_EVENTS_aether-system"
        );
        assert_eq!(legacy_store_stream_name("aether"), "AETHER_EVENTS");
        assert_eq!(store_snapshot_bucket("aether"), "AETHER_SNAPSHOTS");
        let names = [
            "a", "a-b", "a_b", "ab", "a-", "a--b", "0", "bank", "bank-1", "bank_1", "b",
        ];
        let streams: std::collections::HashSet<String> = names
            .iter()
            .map(|name| store_stream_name("aether", &ns(name)))
            .collect();
        assert_eq!(streams.len(), names.len(), "injective: {streams:?}");
        for stream in &streams {
            assert!(
                stream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{stream} is a legal stream name"
            );
            assert_ne!(stream, &legacy_store_stream_name("aether"));
        }
    }
}
