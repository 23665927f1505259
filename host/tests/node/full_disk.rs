//! A full disk, for real: a node whose data directory is a small tmpfs.
//! Writes are refused as `503 store_unavailable` while the disk is full,
//! `/readyz` says so, reads go on, and once there is room again the node
//! writes again without a restart, with every acknowledged event in place.
//! A node also starts on a full disk and serves reads.
//!
//! Mounting needs root, which the tests run as (CI too); a failed mount
//! fails the test with the reason.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{ADMIN, BANK, Http, NodeProcess};

/// A tmpfs of a few MiB, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let size = format!("size={mib}m");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a {mib} MiB tmpfs failed (the full-disk test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![7u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn open(bank: &Http, id: &str, owner_bytes: usize) -> (u16, Value) {
    bank.send(
        &format!("bank/bank-account/{id}"),
        json!({"type": "Open", "data": {"owner": "o".repeat(owner_bytes)}}),
    )
}

fn wait_ready(node: &Http, ready: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = node.get("/readyz");
        if (status == 200) == ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {status} {body} after 20 s (wanted ready = {ready})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_refuses_writes_and_the_node_recovers_without_a_restart() {
    let disk = SmallDisk::mount(48);
    let data = disk.path().join("data");
    let node = NodeProcess::start(&data, &[]);
    let admin = node.client(Some(ADMIN));
    let token = admin.create_namespace("bank", json!({}));
    let bank = node.client(Some(&token));
    bank.deploy("bank", "bank-account", BANK);
    let (status, body) = open(&bank, "kept", 10);
    assert_eq!(status, 200, "{body}");

    let filler = disk.fill();
    // Accounts with big owners until the store cannot grow any more.
    let mut acked = vec!["kept".to_owned()];
    let mut refused = None;
    for i in 0..400 {
        let id = format!("big-{i}");
        match open(&bank, &id, 200 << 10) {
            (200, _) => acked.push(id),
            (status, body) => {
                refused = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refused.expect("the full disk refused a write");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], json!("store_unavailable"), "{body}");
    wait_ready(&admin, false);
    // Reads go on.
    let (status, state) = bank.get("/v1/namespaces/bank/aggregates/bank-account/kept");
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["version"], json!(1));

    std::fs::remove_file(filler).unwrap();
    wait_ready(&admin, true);
    let (status, body) = bank.send(
        "bank/bank-account/kept",
        json!({"type": "Deposit", "data": {"amount": 5}}),
    );
    assert_eq!(status, 200, "writes again without a restart: {body}");
    assert_eq!(body["version"], json!(2));
    for id in &acked {
        let (status, events) = bank.get(&format!(
            "/v1/namespaces/bank/aggregates/bank-account/{id}/events"
        ));
        assert_eq!(status, 200, "{events}");
        assert!(
            events.to_string().contains("Opened"),
            "{id}'s acknowledged event is kept"
        );
    }

    // A node starts on a full disk (with its admin token given again) and
    // serves reads.
    let (exit, log) = node.terminate();
    assert!(exit.success(), "{log}");
    let filler = disk.fill();
    let node = NodeProcess::start(&data, &[]);
    let bank = node.client(Some(&token));
    let (status, state) = bank.get("/v1/namespaces/bank/aggregates/bank-account/kept");
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["version"], json!(2));
    std::fs::remove_file(filler).unwrap();
}
