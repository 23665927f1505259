//! Every scenario of `cargo xtask bench` at smoke size, inside `cargo test`,
//! so a scenario that breaks fails the test suite instead of the next
//! benchmark run. The suite's own code runs (this file includes
//! `benches/suite` as a module), with its own state checks (balances,
//! versions, live counts); only the sizes shrink, and nothing is timed
//! against a target.

#[allow(dead_code)]
#[path = "../benches/suite/main.rs"]
mod suite;

use std::path::{Path, PathBuf};

/// Runs `scenario` at smoke size and checks it reported the metrics it
/// exists for (named `<prefix>…`).
fn smoke(scenario: &str, prefix: &str) {
    let guests = Path::new(aether_test_artifacts::BANK_ACCOUNT_PY)
        .parent()
        .expect("the guests have a folder")
        .to_path_buf();
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-smoke");
    let report = suite::smoke(
        scenario,
        Path::new(aether_test_artifacts::BANK_ACCOUNT),
        guests,
        scratch,
    )
    .unwrap_or_else(|e| panic!("scenario {scenario}: {e:#}"));
    let names = report.names();
    assert!(
        names.iter().any(|name| name.starts_with(prefix)),
        "scenario {scenario} reported no `{prefix}…` metric: {names:?}"
    );
}

/// One test per scenario, and a check that the list is the suite's.
macro_rules! scenarios {
    ($($scenario:ident => $prefix:literal),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                smoke(stringify!($scenario), $prefix);
            }
        )*

        #[test]
        fn every_scenario_of_the_suite_has_a_smoke_test() {
            assert_eq!([$(stringify!($scenario)),*], suite::SCENARIOS);
        }
    };
}

scenarios! {
    density => "density_per_aggregate",
    replay => "replay_ratio",
    overhead => "command_overhead",
    bus_fanout => "bus_fanout_p99",
    languages => "replay_py",
    activation => "activation_snapshot",
    activation_jetstream => "activation_jetstream",
    single => "commands_embedded_single",
    noisy_neighbour => "noisy_neighbour_p99_ratio",
    tenant_abuse => "tenant_abuse_p99_ratio",
    reload => "reload_failed_commands",
    cluster_reload => "cluster_reload_spread",
    commands_jetstream => "commands_jetstream_r3",
    many => "commands_embedded_many",
}
