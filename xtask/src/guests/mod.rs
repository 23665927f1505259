//! Guests written in other languages, built with their own toolchains,
//! which these modules install under `target/` on a fresh machine.

pub(crate) mod js;
pub(crate) mod python;

use std::path::{Path, PathBuf};

use anyhow::Result;

/// Builds every non-Rust guest the tests and benchmarks use.
pub(crate) fn build_all(root: &Path) -> Result<Vec<PathBuf>> {
    Ok(vec![python::build(root)?, js::build(root)?])
}
