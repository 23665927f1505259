//! The same conformance scenarios against the bank-account component in
//! Rust, Python and JavaScript, and against the order in Python and
//! JavaScript: every scenario passes in each, and the languages produce
//! identical events and rejections.

use std::path::Path;

use aether_host::runtime::scenario::{self, Outcome};
use aether_tests::{artifacts, component, memory_runtime, stream, test_config};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/bank-account");
const ORDER_SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/order");

/// The outcome with the parts a scenario leaves open (a rejection message
/// it does not state) removed, so languages can be compared.
fn comparable(expected: &Outcome, actual: Outcome) -> Outcome {
    match (expected, actual) {
        (Outcome::Rejection(e), Outcome::Rejection(mut a)) if e.message.is_none() => {
            a.message = None;
            Outcome::Rejection(a)
        }
        (_, actual) => actual,
    }
}

#[tokio::test]
async fn bank_account_behaves_the_same_in_rust_python_and_javascript() {
    same_everywhere(
        SCENARIOS,
        "bank-account",
        &[
            ("rust", artifacts::BANK_ACCOUNT),
            ("python", artifacts::BANK_ACCOUNT_PY),
            ("javascript", artifacts::BANK_ACCOUNT_JS),
        ],
    )
    .await;
}

/// The order examples (Python SDK, JavaScript SDK).
#[tokio::test]
async fn the_order_behaves_the_same_in_python_and_javascript() {
    same_everywhere(
        ORDER_SCENARIOS,
        "order",
        &[
            ("python", artifacts::ORDER_PY),
            ("javascript", artifacts::ORDER_JS),
        ],
    )
    .await;
}

/// Runs every scenario in `dir` against each component: each must pass,
/// and all must give the same outcomes as the first.
async fn same_everywhere(dir: &str, aggregate_type: &str, components: &[(&str, &str)]) {
    let scenarios = scenario::load_scenarios(Path::new(dir)).unwrap();
    assert!(scenarios.len() >= 16);
    let runtime = memory_runtime(test_config());
    let target = stream("conformance", aggregate_type, "scenario");

    let mut results: Vec<(&str, Vec<Outcome>)> = Vec::new();
    for &(language, path) in components {
        assert!(
            Path::new(path).exists(),
            "the {language} component is missing at {path}: `cargo xtask test` builds it"
        );
        let loaded = runtime
            .load_component(component(path))
            .await
            .unwrap_or_else(|e| panic!("{language}: {e}"));
        // Guest calls block (WASI's sync bindings): off the async workers.
        let actuals = {
            let (scenarios, runtime, target) = (scenarios.clone(), runtime.clone(), target.clone());
            tokio::task::spawn_blocking(move || {
                scenarios
                    .iter()
                    .map(|s| s.run(&runtime, &loaded, &target))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap()
        };
        let mut outcomes = Vec::new();
        for (scenario, actual) in scenarios.iter().zip(actuals) {
            assert!(
                scenario.accepts(&actual),
                "{language}: {} ({})\n{}",
                scenario.name,
                scenario.file.display(),
                scenario::diff(&scenario.then, &actual)
            );
            outcomes.push(comparable(&scenario.then, actual));
        }
        results.push((language, outcomes));
    }
    let (reference, expected) = &results[0];
    for (language, outcomes) in &results[1..] {
        for ((scenario, a), b) in scenarios.iter().zip(expected).zip(outcomes) {
            assert_eq!(
                a, b,
                "{} differs between {reference} and {language}",
                scenario.name
            );
        }
    }
}
