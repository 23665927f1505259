//! Paths of the guest components the tests use, built from this
//! repository's sources by `build.rs`: the example aggregates, the hostile
//! test guest and WAT components with forbidden imports.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
