//! Membership and leader election, seen over HTTP, in metrics and by
//! `aether cluster status`.

use std::process::Command;

use serde_json::json;

use crate::harness::{Cluster, SHARDS};
use crate::support::ADMIN;

#[test]
fn three_nodes_see_each_other_elect_one_leader_and_share_the_shards() {
    let _serial = crate::serial();
    let cluster = Cluster::start(3);
    let leader = cluster.leader();
    let status = cluster.status(0);
    assert_eq!(status["shards"], json!(SHARDS));
    let members: Vec<&str> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["node-1", "node-2", "node-3"]);
    for member in status["members"].as_array().unwrap() {
        assert!(
            member["api"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:"),
            "{member}"
        );
    }
    // Every shard has one owner; each node owns a fair part.
    let per_node = status["shards_per_node"].as_object().unwrap();
    let total: u64 = per_node.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, SHARDS as u64);
    assert!(
        per_node
            .values()
            .all(|v| (40..=130).contains(&v.as_u64().unwrap())),
        "{per_node:?}"
    );
    for i in 0..3 {
        let view = cluster.status(i);
        assert_eq!(view["leader"], json!(Cluster::node_id(leader)));
        assert_eq!(view["epoch"], status["epoch"]);
        assert_eq!(view["owners"], status["owners"]);
    }

    // Metrics: exactly one node holds the lease.
    let leaders: Vec<usize> = (0..3)
        .filter(|&i| cluster.metrics(i).contains("aether_cluster_is_leader 1\n"))
        .collect();
    assert_eq!(leaders, [leader]);
    assert!(cluster.metrics(0).contains("aether_cluster_members 3\n"));

    // The operator's view.
    let output = Command::new(env!("CARGO_BIN_EXE_aether"))
        .args([
            "cluster",
            "status",
            "--node",
            &cluster.urls()[1],
            "--token",
            ADMIN,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.starts_with("node node-2 · leader "), "{text}");
    assert!(
        text.contains(&format!("epoch {}", status["epoch"])),
        "{text}"
    );
    for i in 0..3 {
        let id = Cluster::node_id(i);
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&id))
            .unwrap_or_else(|| panic!("{id} missing: {text}"));
        assert!(
            line.contains(&format!("{} shards", per_node[&id])),
            "{line}"
        );
    }

    // A namespace token is not enough; a node alone has no cluster.
    let (status, body) = cluster.client(0).get("/v1/cluster");
    assert_eq!(status, 403, "{body}");
}

#[test]
fn a_new_leader_takes_over_when_the_leader_goes_and_the_change_is_counted() {
    let _serial = crate::serial();
    let mut cluster = Cluster::start(3);
    let old = cluster.leader();
    let changes_before = cluster.status((old + 1) % 3)["leader_changes"]
        .as_u64()
        .unwrap();
    cluster.terminate(old);
    let status = cluster.wait_stable(2);
    let new = cluster.leader();
    assert_ne!(new, old);
    assert_eq!(status["leader"], json!(Cluster::node_id(new)));
    let survivor = cluster.running()[0];
    let changes_after = cluster.status(survivor)["leader_changes"].as_u64().unwrap();
    assert!(
        changes_after > changes_before,
        "{changes_before} → {changes_after}"
    );
    assert!(
        cluster
            .metrics(survivor)
            .contains("aether_cluster_leader_changes_total")
    );
}
