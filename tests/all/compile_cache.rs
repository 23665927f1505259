//! The compile cache: a restarted node reads compiled components from its
//! own cache; a damaged or incompatible entry is recompiled, never trusted;
//! a version freed from memory once replaced comes back from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aether_host::namespace::{AggregateType, Namespace};
use aether_host::runtime::{CompiledFrom, RuntimeConfig, with_custom_section};
use aether_tests::{artifacts, component, deploy, memory_runtime, send, stream, test_config};
use serde_json::json;

fn cached_config(dir: &Path) -> RuntimeConfig {
    RuntimeConfig {
        compile_cache: Some(dir.to_path_buf()),
        ..test_config()
    }
}

/// Starts a fresh runtime (a node restart: new engine) and loads `path`.
async fn load(dir: &Path, path: &str) -> CompiledFrom {
    let runtime = memory_runtime(cached_config(dir));
    let loaded = runtime.load_component(component(path)).await.unwrap();
    loaded.compiled_from()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_restart_reads_the_cache_and_a_damaged_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        load(dir.path(), artifacts::BANK_ACCOUNT).await,
        CompiledFrom::Compiled
    );
    let files = entries(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let entry = files[0].clone();
    assert_eq!(
        load(dir.path(), artifacts::BANK_ACCOUNT).await,
        CompiledFrom::Cache
    );

    // A component read from the cache serves commands.
    let runtime = memory_runtime(cached_config(dir.path()));
    deploy(&runtime, "c", "bank-account", artifacts::BANK_ACCOUNT).await;
    let acc = stream("c", "bank-account", "a");
    send(&runtime, &acc, "Open", json!({"owner": "C"}))
        .await
        .unwrap();
    assert_eq!(runtime.state(&acc).await.unwrap().view["owner"], json!("C"));

    // Flip one byte of the compiled code: not trusted, recompiled, rewritten.
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&entry, &bytes).unwrap();
    assert_eq!(
        load(dir.path(), artifacts::BANK_ACCOUNT).await,
        CompiledFrom::Compiled
    );
    assert_eq!(
        load(dir.path(), artifacts::BANK_ACCOUNT).await,
        CompiledFrom::Cache,
        "the entry was rewritten"
    );

    // Truncated.
    let sound = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &sound[..sound.len() / 3]).unwrap();
    assert_eq!(
        load(dir.path(), artifacts::BANK_ACCOUNT).await,
        CompiledFrom::Compiled
    );

    // Well-formed header and hash, but not code this engine can run.
    let garbage = b"not machine code for this engine".to_vec();
    let mut forged = b"AETHCWv1".to_vec();
    forged.extend_from_slice(blake3::hash(&garbage).as_bytes());
    forged.extend_from_slice(&garbage);
    std::fs::write(&entry, &forged).unwrap();
    assert_eq!(
        load(dir.path(), artifacts::BANK_ACCOUNT).await,
        CompiledFrom::Compiled
    );
    assert_eq!(
        load(dir.path(), artifacts::BANK_ACCOUNT).await,
        CompiledFrom::Cache
    );
}

#[tokio::test]
async fn a_refused_component_is_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = memory_runtime(cached_config(dir.path()));
    assert!(
        runtime
            .load_component(component(artifacts::IMPORTS_WASI_HTTP))
            .await
            .is_err()
    );
    assert!(!dir.path().exists() || entries(dir.path()).is_empty());
}

#[tokio::test]
async fn a_python_component_is_not_recompiled_on_the_second_start() {
    let path = artifacts::BANK_ACCOUNT_PY;
    assert!(
        Path::new(path).exists(),
        "the Python component is missing at {path}: `cargo xtask test` builds it"
    );
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load(dir.path(), path).await, CompiledFrom::Compiled);
    assert_eq!(load(dir.path(), path).await, CompiledFrom::Cache);
}

/// A replaced version's compiled code is freed once nothing uses it (the
/// registry kept every version ever deployed in memory before); activating
/// it again reads it from the compile cache and serves as before.
#[tokio::test]
async fn a_replaced_version_is_freed_and_comes_back_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = memory_runtime(cached_config(dir.path()));
    let (ns, ty) = (
        Namespace::new("c").unwrap(),
        AggregateType::new("bank-account").unwrap(),
    );
    let variant = |n: u32| {
        with_custom_section(
            &component(artifacts::BANK_ACCOUNT),
            "variant",
            &n.to_le_bytes(),
        )
    };
    let first = runtime.load_component(variant(1)).await.unwrap();
    let first_digest = first.digest().clone();
    let freed = Arc::downgrade(&first);
    runtime.activate(&ns, &ty, first);
    let acc = stream("c", "bank-account", "a");
    send(&runtime, &acc, "Open", json!({"owner": "C"}))
        .await
        .unwrap();

    // The second version serves the next command; nothing holds the first.
    runtime.deploy(&ns, &ty, variant(2)).await.unwrap();
    send(&runtime, &acc, "Deposit", json!({"amount": 5}))
        .await
        .unwrap();
    assert!(
        freed.upgrade().is_none(),
        "the replaced version is still in memory"
    );

    // Back to the first: from the compile cache, with the same state.
    let again = runtime.load_component(variant(1)).await.unwrap();
    assert_eq!(again.digest(), &first_digest);
    assert_eq!(again.compiled_from(), CompiledFrom::Cache);
    runtime.activate(&ns, &ty, again);
    let outcome = send(&runtime, &acc, "Deposit", json!({"amount": 1}))
        .await
        .unwrap();
    assert_eq!(
        outcome.events[0].metadata.component_digest.as_deref(),
        Some(first_digest.to_hex().as_str())
    );
    assert_eq!(runtime.state(&acc).await.unwrap().view["balance"], json!(6));
}

/// Loads `bytes` in a fresh runtime (a restart) whose cache in `dir` holds
/// at most `max_bytes`: where its code came from, and its digest in hex.
async fn load_bounded(dir: &Path, max_bytes: u64, bytes: Vec<u8>) -> (CompiledFrom, String) {
    let runtime = memory_runtime(RuntimeConfig {
        compile_cache_max_bytes: max_bytes,
        ..cached_config(dir)
    });
    let loaded = runtime.load_component(bytes).await.unwrap();
    (loaded.compiled_from(), loaded.digest().to_hex())
}

/// Whether the cache in `dir` holds an entry for the digest `hex`.
fn cached(dir: &Path, hex: &str) -> bool {
    entries(dir)
        .iter()
        .any(|p| p.file_name().unwrap().to_string_lossy().starts_with(hex))
}

/// The cache holds at most `compile_cache_max_bytes` (a tenant deploying
/// version after version grew it without bound): the entry used longest
/// ago goes first, a read counting as a use; a restart with a lower bound
/// sheds the excess; an entry bigger than the whole bound is not kept; a
/// half-written entry left by a dead process is removed once stale.
#[tokio::test]
async fn the_cache_keeps_within_its_bound_and_drops_the_entry_used_longest_ago() {
    let dir = tempfile::tempdir().unwrap();
    let variant = |n: u32| {
        with_custom_section(
            &component(artifacts::BANK_ACCOUNT),
            "variant",
            &n.to_le_bytes(),
        )
    };
    // One entry's size, then room for two and a half.
    let (_, zero) = load_bounded(dir.path(), u64::MAX, variant(0)).await;
    let files = entries(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let entry_bytes = std::fs::metadata(&files[0]).unwrap().len();
    std::fs::remove_file(&files[0]).unwrap();
    assert!(!cached(dir.path(), &zero));
    let bound = entry_bytes * 5 / 2;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(20));

    let (from, one) = load_bounded(dir.path(), bound, variant(1)).await;
    assert_eq!(from, CompiledFrom::Compiled);
    pause().await;
    let (_, two) = load_bounded(dir.path(), bound, variant(2)).await;
    pause().await;
    // Version 1 is used again (read from the cache), so version 2 is now
    // the one used longest ago.
    assert_eq!(
        load_bounded(dir.path(), bound, variant(1)).await.0,
        CompiledFrom::Cache
    );
    pause().await;
    let (_, three) = load_bounded(dir.path(), bound, variant(3)).await;
    assert!(cached(dir.path(), &one), "used last but one: kept");
    assert!(!cached(dir.path(), &two), "used longest ago: removed");
    assert!(cached(dir.path(), &three), "just written: kept");
    let held: u64 = entries(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(held <= bound, "{held} bytes held, bound {bound}");
    // The removed version is compiled again, and nothing is lost.
    pause().await;
    assert_eq!(
        load_bounded(dir.path(), bound, variant(2)).await.0,
        CompiledFrom::Compiled
    );
    assert!(cached(dir.path(), &two) && cached(dir.path(), &three));
    assert!(!cached(dir.path(), &one), "now the one used longest ago");

    // Half-written entries: one left an hour and more ago by a process
    // that died, one being written right now.
    let stale = dir.path().join("dead.partial-1");
    let fresh = dir.path().join("writing.partial-2");
    std::fs::write(&stale, b"half").unwrap();
    std::fs::write(&fresh, b"half").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7_200))
        .unwrap();

    // Restarted with room for half an entry: every entry goes on start, and
    // a new one is compiled but not kept.
    let (from, four) = load_bounded(dir.path(), entry_bytes / 2, variant(4)).await;
    assert_eq!(from, CompiledFrom::Compiled);
    assert!(!cached(dir.path(), &four), "bigger than the whole cache");
    assert!(!stale.exists(), "a stale half-written entry is removed");
    assert!(fresh.exists(), "an entry being written is left alone");
    assert_eq!(entries(dir.path()), vec![fresh.clone()]);
    assert_eq!(
        load_bounded(dir.path(), entry_bytes / 2, variant(4))
            .await
            .0,
        CompiledFrom::Compiled
    );

    // A bound of 0 keeps nothing: the cache is emptied on start and a new
    // compile is not written.
    std::fs::remove_file(&fresh).unwrap();
    load_bounded(dir.path(), u64::MAX, variant(5)).await;
    assert_eq!(entries(dir.path()).len(), 1);
    let (from, five) = load_bounded(dir.path(), 0, variant(6)).await;
    assert_eq!(from, CompiledFrom::Compiled);
    assert!(!cached(dir.path(), &five));
    assert!(entries(dir.path()).is_empty(), "emptied on start");
}
