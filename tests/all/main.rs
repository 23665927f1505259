//! The integration tests, one binary: real components built from this
//! repository (see `tests/artifacts`) on the real host.

mod catchup;
mod command_path;
mod compile_cache;
mod concurrency;
mod conformance;
mod density;
mod determinism;
mod hostile;
mod lanes;
mod languages_sandbox;
mod lean_path;
mod snapshots;
mod truthful_answers;
mod wit_versions;
