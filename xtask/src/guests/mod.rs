//! Guests written in other languages, built with their own toolchains,
//! which these modules install under `target/` on a fresh machine.

pub(crate) mod js;
pub(crate) mod python;

use std::path::{Path, PathBuf};

use anyhow::Result;

/// Builds every non-Rust guest the tests and benchmarks use: the bank
/// accounts, the orders and the WASI probes, in Python and in JavaScript
/// (running the SDKs' and examples' native tests first).
pub(crate) fn build_all(root: &Path) -> Result<Vec<PathBuf>> {
    let mut built = python::build(root, &[python::BANK_ACCOUNT, python::ORDER, python::PROBE])?;
    built.extend(js::build(root, &[js::BANK_ACCOUNT, js::ORDER, js::PROBE])?);
    Ok(built)
}
