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
