//! Conformance scenarios: given events, when a command, then events or a
//! rejection — run against any compiled component through the host.
//!
//! A scenario is a JSON file, independent of the language the component is
//! written in:
//!
//! ```json
//! {
//!   "name": "withdrawing more than the balance is rejected",
//!   "given": [{ "type": "Opened", "data": { "owner": "Ada" } },
//!             { "type": "Deposited", "data": { "amount": 70 } }],
//!   "when": { "type": "Withdraw", "data": { "amount": 200 } },
//!   "then": { "rejection": { "code": "insufficient-funds",
//!                            "message": "cannot withdraw 200: the balance is 70" } }
//! }
//! ```
//!
//! `then` is either `{"events": [...]}` (the exact events, in order; data
//! compared as JSON values) or `{"rejection": {"code": ..., "message": ...}}`
//! (`message` optional: when absent only the code is compared). `name`
//! defaults to the file name. Payloads are sent as compact JSON with the
//! content type `application/json`; given events get versions 1, 2, 3… and
//! a fixed timestamp.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use aether_store::{EventMetadata, RecordedEvent, StreamId};

use super::command::JSON;
use super::{DirectAggregate, LoadedComponent, Runtime};

/// The timestamp given events and the command carry in scenarios.
const SCENARIO_TIME_MS: u64 = 1_700_000_000_000;

/// One scenario, as read from its file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario shows.
    #[serde(default)]
    pub name: String,
    /// The aggregate's history before the command.
    #[serde(default)]
    pub given: Vec<Message>,
    /// The command.
    pub when: Message,
    /// What must come out.
    pub then: Outcome,
    /// The file it came from.
    #[serde(skip)]
    pub file: PathBuf,
}

/// An event or a command in a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Its type, e.g. `Deposited`.
    #[serde(rename = "type")]
    pub message_type: String,
    /// Its payload.
    #[serde(default)]
    pub data: Value,
}

/// What a component did with the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Outcome {
    /// New events, in order.
    Events(Vec<Message>),
    /// A rejection.
    Rejection(ExpectedRejection),
    /// The component failed (trapped, refused a given event, returned data
    /// that is not JSON). Never expected by a scenario.
    Failure(String),
}

/// A rejection; `message` is compared only when the scenario gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRejection {
    /// The rejection's code.
    pub code: String,
    /// The rejection's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("scenario {file}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// Reads every `*.json` scenario in `dir`, sorted by file name.
pub fn load_scenarios(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let error = |file: &Path, message: String| ScenarioError {
        file: file.to_path_buf(),
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| error(dir, format!("cannot read the directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(error(dir, "no *.json scenario files".into()));
    }
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).map_err(|e| error(&file, e.to_string()))?;
            let mut scenario: Scenario =
                serde_json::from_str(&text).map_err(|e| error(&file, e.to_string()))?;
            if let Outcome::Failure(_) = scenario.then {
                return Err(error(
                    &file,
                    "`then` must be `events` or `rejection`".into(),
                ));
            }
            if scenario.name.is_empty() {
                scenario.name = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
            }
            scenario.file = file;
            Ok(scenario)
        })
        .collect()
}

impl Scenario {
    /// Runs the scenario against `component` in a fresh aggregate and
    /// returns what the component did.
    pub fn run(
        &self,
        runtime: &Runtime,
        component: &LoadedComponent,
        stream: &StreamId,
    ) -> Outcome {
        match self.try_run(runtime, component, stream) {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }

    fn try_run(
        &self,
        runtime: &Runtime,
        component: &LoadedComponent,
        stream: &StreamId,
    ) -> Result<Outcome, Outcome> {
        let failed = |what: &str, e: &dyn fmt::Display| Outcome::Failure(format!("{what}: {e}"));
        let mut aggregate = DirectAggregate::new(runtime, component, stream.clone())
            .map_err(|e| failed("instantiating", &e))?;
        let given: Vec<RecordedEvent> = self
            .given
            .iter()
            .enumerate()
            .map(|(i, event)| RecordedEvent {
                id: uuid::Uuid::nil(),
                stream: stream.clone(),
                version: i as u64 + 1,
                position: i as u64 + 1,
                event_type: event.message_type.clone(),
                content_type: JSON.to_string(),
                data: event.data.to_string().into_bytes(),
                metadata: EventMetadata::default(),
                timestamp_ms: SCENARIO_TIME_MS,
            })
            .collect();
        aggregate
            .apply(&given)
            .map_err(|e| failed("applying the given events", &e))?;
        let data = self.when.data.to_string();
        let decision = aggregate
            .execute(
                &self.when.message_type,
                JSON,
                data.as_bytes(),
                SCENARIO_TIME_MS,
            )
            .map_err(|e| failed("handling the command", &e))?;
        Ok(match decision {
            Err(rejection) => Outcome::Rejection(ExpectedRejection {
                code: rejection.code,
                message: Some(rejection.message),
            }),
            Ok(events) => Outcome::Events(
                events
                    .into_iter()
                    .map(|event| {
                        let data = serde_json::from_slice(&event.data).map_err(|e| {
                            failed(&format!("event {} is not JSON", event.event_type), &e)
                        })?;
                        Ok(Message {
                            message_type: event.event_type,
                            data,
                        })
                    })
                    .collect::<Result<_, Outcome>>()?,
            ),
        })
    }

    /// Whether `actual` is what the scenario expects.
    pub fn accepts(&self, actual: &Outcome) -> bool {
        match (&self.then, actual) {
            (Outcome::Events(expected), Outcome::Events(actual)) => expected == actual,
            (Outcome::Rejection(expected), Outcome::Rejection(actual)) => {
                expected.code == actual.code
                    && expected
                        .message
                        .as_ref()
                        .is_none_or(|m| Some(m) == actual.message.as_ref())
            }
            _ => false,
        }
    }
}

/// A line diff of two outcomes, as pretty JSON: `-` lines are expected and
/// missing, `+` lines are actual and unexpected.
pub fn diff(expected: &Outcome, actual: &Outcome) -> String {
    let render = |o: &Outcome| serde_json::to_string_pretty(o).unwrap_or_else(|e| e.to_string());
    let (expected, actual) = (render(expected), render(actual));
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    // Longest common subsequence table, filled from the end.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: &str, data: Value) -> Message {
        Message {
            message_type: t.into(),
            data,
        }
    }

    #[test]
    fn diff_marks_what_differs() {
        let expected = Outcome::Events(vec![event("Deposited", serde_json::json!({"amount": 5}))]);
        let actual = Outcome::Events(vec![event("Deposited", serde_json::json!({"amount": 6}))]);
        let diff = diff(&expected, &actual);
        assert!(diff.contains("-         \"amount\": 5"), "{diff}");
        assert!(diff.contains("+         \"amount\": 6"), "{diff}");
        assert!(diff.contains("  {"), "{diff}");
    }

    #[test]
    fn rejection_message_is_optional() {
        let scenario = Scenario {
            name: "x".into(),
            given: vec![],
            when: event("Withdraw", Value::Null),
            then: Outcome::Rejection(ExpectedRejection {
                code: "no".into(),
                message: None,
            }),
            file: PathBuf::new(),
        };
        let actual = |code: &str| {
            Outcome::Rejection(ExpectedRejection {
                code: code.into(),
                message: Some("m".into()),
            })
        };
        assert!(scenario.accepts(&actual("no")));
        assert!(!scenario.accepts(&actual("yes")));
        assert!(!scenario.accepts(&Outcome::Events(vec![])));
    }
}
