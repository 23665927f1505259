//! The layering of ARCHITECTURE.md ("Crates and layering"), checked
//! against the workspace's manifests: each of the host's crates depends
//! only on the crates below it. (Cargo already refuses a cycle; this also
//! refuses an arrow that skips sideways or up without making one.)

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each crate and the host crates it may use, bottom up.
const LAYERS: &[(&str, &[&str])] = &[
    ("aether-core", &[]),
    ("aether-store", &["aether-core"]),
    ("aether-runtime", &["aether-core", "aether-store"]),
    ("aether-bus", &["aether-core", "aether-store"]),
    (
        "aether-service",
        &["aether-core", "aether-store", "aether-runtime"],
    ),
    (
        "aether-cluster",
        &[
            "aether-core",
            "aether-store",
            "aether-runtime",
            "aether-service",
        ],
    ),
    (
        "aether-node",
        &[
            "aether-core",
            "aether-store",
            "aether-runtime",
            "aether-bus",
            "aether-service",
            "aether-cluster",
        ],
    ),
];

#[test]
fn each_host_crate_depends_only_on_the_crates_below_it() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap().to_owned();
        let normal = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|dep| dep["kind"].is_null())
            .map(|dep| dep["name"].as_str().unwrap().to_owned())
            .filter(|dep| dep.starts_with("aether-"))
            .collect();
        uses.insert(name, normal);
    }
    for (crate_name, allowed) in LAYERS {
        let used = uses
            .get(*crate_name)
            .unwrap_or_else(|| panic!("{crate_name} is not in the workspace"));
        let above: Vec<&String> = used
            .iter()
            .filter(|dep| !allowed.contains(&dep.as_str()))
            .collect();
        assert!(
            above.is_empty(),
            "{crate_name} depends on {above:?}, which are not below it in the layering"
        );
    }
    // The CLI's crates belong to the binary only.
    for (crate_name, _) in LAYERS {
        let manifest = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == *crate_name)
            .unwrap();
        for dep in manifest["dependencies"].as_array().unwrap() {
            let name = dep["name"].as_str().unwrap();
            assert!(
                !["clap", "indicatif", "ureq"].contains(&name),
                "{crate_name} depends on {name}, which only the `aether` binary may use"
            );
        }
    }
}
