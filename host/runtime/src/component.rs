//! Loading an aggregate component: digest, compile, check its imports and
//! exports, link it against the sandbox.
//!
//! **Architecture invariant:** an aggregate component imports only WASI p2
//! (0.2.x: cli, clocks, filesystem, io, random, sockets — all served by the
//! capability-free context of [`super::sandbox`]) and this project's
//! `aether:aggregate` interfaces (0.1.x to 0.4.x). Anything else,
//! `wasi:http` included, is refused here, before the component can run,
//! with the import's name.
//!
//! A component exports `aether:aggregate/handler` at 0.4.x (the current
//! version), or 0.3.x, 0.2.x or 0.1.x (frozen, still served); [`ComponentPre`]
//! remembers which, and each call is made through that version's bindings.

use std::fmt;
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

use super::bindings::{v1, v2, v3, v4};
use super::cache::{CompileCache, CompiledFrom};
use super::sandbox::HostState;

/// The WIT interface every aggregate component must export, at its current
/// version; 0.3.x, 0.2.x and 0.1.x (frozen) are served too.
pub const HANDLER_EXPORT: &str = "aether:aggregate/handler@0.4.0";

/// The `aether:aggregate` versions the host serves, newest first: 0.4.x
/// and the frozen 0.3.x, 0.2.x and 0.1.x.
const SERVED_VERSIONS: &[&str] = &["0.4.", "0.3.", "0.2.", "0.1."];

/// WASI p2 packages a guest may import (any 0.2.x version).
const ALLOWED_WASI: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// The blake3 digest of a component's bytes: its identity everywhere
/// (registry, instances, snapshots, the metadata of every event it decided).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest(blake3::Hash);

impl PartialOrd for Digest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Digest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_bytes().cmp(other.0.as_bytes())
    }
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(blake3::hash(bytes))
    }

    /// The digest as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        self.0.to_hex().to_string()
    }

    /// The first 12 hex characters, for logs and tables.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

/// Why a component was refused. Nothing was deployed; what was serving
/// before keeps serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The bytes are not a valid WebAssembly component (a core module, a
    /// truncated file, another format). Build it for `wasm32-wasip2`.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// The component imports something an aggregate may not use. Remove the
    /// dependency that pulls the import in.
    #[error(
        "component imports `{import}`, which aggregates may not use: only WASI p2 \
         (cli, clocks, filesystem, io, random, sockets) and aether:aggregate interfaces are allowed"
    )]
    ForbiddenImport {
        /// The import's full name, e.g. `wasi:http/outgoing-handler@0.2.0`.
        import: String,
    },
    /// The component does not export the aggregate interface. Export it
    /// with the guest SDK (`export_aggregate!`) or target the
    /// `aggregate-component` world.
    #[error(
        "component does not export `{HANDLER_EXPORT}` (or the frozen `aether:aggregate/handler@0.3.0`, `@0.2.0` or `@0.1.0`): \
         it exports [{found}]"
    )]
    WrongWorld {
        /// What the component exports instead, comma-separated.
        found: String,
    },
    /// Linking failed although the imports looked allowed (for example a
    /// WASI function with an unexpected signature).
    #[error("component cannot be linked: {0}")]
    Link(String),
}

/// The custom section in which a component declares the version of its
/// state's schema (its snapshot format), as 1–64 printable ASCII bytes.
/// The Rust SDK writes it with `aether_guest::state_schema!("1")`; any
/// toolchain can add it (`wasm-tools metadata add` or a custom section in
/// the core module).
pub const STATE_SCHEMA_SECTION: &str = "aether:state-schema";

/// A compiled, checked and linked aggregate component, ready to instantiate.
pub struct LoadedComponent {
    digest: Digest,
    /// `digest` in hex, written once: every event it decides carries it.
    digest_hex: String,
    state_schema: Option<String>,
    size: usize,
    compiled_from: CompiledFrom,
    /// The handler interface it exports, e.g. `aether:aggregate/handler@0.4.0`.
    handler_export: String,
    pub(crate) pre: ComponentPre,
}

/// A component ready to instantiate, through the bindings of the
/// `aether:aggregate` version it exports.
pub(crate) enum ComponentPre {
    /// Exports `aether:aggregate/handler@0.1.x`: `apply` takes a `list<event>`.
    V1(v1::AggregateComponentPre<HostState>),
    /// Exports `aether:aggregate/handler@0.2.x`: `apply` takes an
    /// `event-batch`, `handle` decides without applying.
    V2(v2::AggregateComponentPre<HostState>),
    /// Exports `aether:aggregate/handler@0.3.x`: `execute` decides and
    /// applies, with records in and out.
    V3(v3::AggregateComponentPre<HostState>),
    /// Exports `aether:aggregate/handler@0.4.x`: `execute` decides and
    /// applies, and gives the decided events as a batch.
    V4(v4::AggregateComponentPre<HostState>),
}

impl LoadedComponent {
    /// The component's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The component's digest as 64 lowercase hex characters
    /// ([`Digest::to_hex`]), kept from loading.
    pub fn digest_hex(&self) -> &str {
        &self.digest_hex
    }

    /// The state-schema version the component declares
    /// ([`STATE_SCHEMA_SECTION`]), if any.
    pub fn state_schema(&self) -> Option<&str> {
        self.state_schema.as_deref()
    }

    /// The key its snapshots are stored and found under: `schema:<version>`
    /// when it declares a state schema, so that every version of the
    /// component with the same schema shares snapshots; otherwise its
    /// digest, so that only the very same component uses them.
    pub fn snapshot_key(&self) -> String {
        match &self.state_schema {
            Some(schema) => format!("schema:{schema}"),
            None => self.digest.to_hex(),
        }
    }

    /// The size of the component's bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The `aether:aggregate/handler` interface it exports, with its
    /// version, e.g. `aether:aggregate/handler@0.4.0`.
    pub fn handler_export(&self) -> &str {
        &self.handler_export
    }

    /// Whether its machine code was compiled now or read from the cache.
    pub fn compiled_from(&self) -> CompiledFrom {
        self.compiled_from
    }
}

impl fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .finish()
    }
}

/// The linker every component is linked against: the sandbox's WASI p2 and
/// the host's `aether:aggregate` imports.
pub(crate) fn sandbox_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    v4::aether::aggregate0_4_0::log::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    v3::aether::aggregate0_3_0::log::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    v2::aether::aggregate0_2_0::log::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    v1::aether::aggregate0_1_0::log::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |state| state,
    )?;
    Ok(linker)
}

/// How many of a component's first bytes [`check_preamble`] looks at: the
/// WebAssembly magic `\0asm`, then a version and a layer (2 bytes each;
/// a core module's layer is 0, a component's 1).
pub const PREAMBLE_BYTES: usize = 8;

/// Refuses what cannot be a WebAssembly component from its first bytes
/// alone (up to [`PREAMBLE_BYTES`]; fewer are checked as far as they go):
/// another format, or a core module. The node checks an upload's first
/// bytes as they arrive, so junk is refused before the rest is read; a
/// body that passes is checked whole when it is loaded.
pub fn check_preamble(start: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    let magic = &start[..start.len().min(MAGIC.len())];
    if magic != &MAGIC[..magic.len()] {
        let shown: Vec<String> = magic.iter().map(|b| format!("{b:02x}")).collect();
        return Err(LoadError::Invalid(format!(
            "the bytes do not start with the WebAssembly magic `\\0asm` (they start with {}); \
             send a component built for wasm32-wasip2",
            shown.join(" ")
        )));
    }
    if start.len() >= PREAMBLE_BYTES && start[6..PREAMBLE_BYTES] == [0, 0] {
        return Err(LoadError::Invalid(
            "a core WebAssembly module, not a component; build for wasm32-wasip2 \
             (or wrap the module with `wasm-tools component new`)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Compiles and checks `bytes`, whose digest the caller has computed, as
/// an aggregate component.
pub(crate) fn load(
    engine: &Engine,
    linker: &Linker<HostState>,
    (bytes, digest): (&[u8], Digest),
    cache: Option<&CompileCache>,
) -> Result<Arc<LoadedComponent>, LoadError> {
    check_preamble(bytes)?;
    let state_schema = state_schema(bytes)?;
    let cached = cache.and_then(|cache| cache.get(engine, &digest));
    let compiled_from = if cached.is_some() {
        CompiledFrom::Cache
    } else {
        CompiledFrom::Compiled
    };
    let component = match cached {
        Some(component) => component,
        None => Component::from_binary(engine, bytes)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?,
    };
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if !import_allowed(name) {
            return Err(LoadError::ForbiddenImport {
                import: name.to_string(),
            });
        }
    }
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    if !exports.iter().any(|name| export_matches(name)) {
        return Err(LoadError::WrongWorld {
            found: exports.join(", "),
        });
    }
    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::Link(format!("{e:#}")))?;
    // The newest version it exports is the one it is called through.
    let handler_export = SERVED_VERSIONS
        .iter()
        .find_map(|v| exports.iter().find(|name| exports_version(name, v)))
        .map(|name| name.to_string())
        .unwrap_or_default();
    let pre = if exports_version(&handler_export, "0.4.") {
        v4::AggregateComponentPre::new(instance_pre).map(ComponentPre::V4)
    } else if exports_version(&handler_export, "0.3.") {
        v3::AggregateComponentPre::new(instance_pre).map(ComponentPre::V3)
    } else if exports_version(&handler_export, "0.2.") {
        v2::AggregateComponentPre::new(instance_pre).map(ComponentPre::V2)
    } else {
        v1::AggregateComponentPre::new(instance_pre).map(ComponentPre::V1)
    }
    .map_err(|e| LoadError::WrongWorld {
        found: format!("{} ({e:#})", exports.join(", ")),
    })?;
    if let (Some(cache), CompiledFrom::Compiled) = (cache, compiled_from) {
        cache.put(&digest, &component);
    }
    tracing::debug!(digest = %digest.short(), size = bytes.len(), ?compiled_from, "component loaded");
    Ok(Arc::new(LoadedComponent {
        digest_hex: digest.to_hex(),
        digest,
        state_schema,
        size: bytes.len(),
        compiled_from,
        handler_export,
        pre,
    }))
}

/// The state-schema version declared in `bytes` (in the component or any
/// module inside it), if any. Several sections must agree.
fn state_schema(bytes: &[u8]) -> Result<Option<String>, LoadError> {
    let mut found: Option<String> = None;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::Invalid(e.to_string()))?;
        let wasmparser::Payload::CustomSection(section) = payload else {
            continue;
        };
        if section.name() != STATE_SCHEMA_SECTION {
            continue;
        }
        let version = std::str::from_utf8(section.data())
            .ok()
            .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                LoadError::Invalid(format!(
                    "the `{STATE_SCHEMA_SECTION}` section must hold 1 to 64 printable ASCII characters"
                ))
            })?;
        match &found {
            Some(other) if other != version => {
                return Err(LoadError::Invalid(format!(
                    "the component declares two state schemas, `{other}` and `{version}`"
                )));
            }
            _ => found = Some(version.to_owned()),
        }
    }
    Ok(found)
}

/// Appends a custom section to a component or module binary (for tools
/// and tests: a component with a declared state schema, say). The result
/// is a valid binary with a new digest.
pub fn with_custom_section(bytes: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(data);
    let mut out = bytes.to_vec();
    out.push(0); // the custom section's id
    leb128(content.len(), &mut out);
    out.extend(content);
    out
}

/// Whether an import name is in the allowed set. Names look like
/// `wasi:cli/environment@0.2.3` or `aether:aggregate/log@0.2.0`.
fn import_allowed(name: &str) -> bool {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let Some((package, _interface)) = path.split_once('/') else {
        return false;
    };
    match package.split_once(':') {
        Some(("wasi", wasi_package)) => {
            ALLOWED_WASI.contains(&wasi_package) && version.starts_with("0.2.")
        }
        Some(("aether", "aggregate")) => SERVED_VERSIONS.iter().any(|v| version.starts_with(v)),
        _ => false,
    }
}

fn export_matches(name: &str) -> bool {
    SERVED_VERSIONS.iter().any(|v| exports_version(name, v))
}

/// Whether `name` is the handler interface at a version starting with `prefix`.
fn exports_version(name: &str, prefix: &str) -> bool {
    name.strip_prefix("aether:aggregate/handler@")
        .is_some_and(|version| version.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_imports() {
        for name in [
            "wasi:cli/environment@0.2.0",
            "wasi:io/streams@0.2.12",
            "wasi:sockets/tcp@0.2.3",
            "wasi:filesystem/preopens@0.2.6",
            "aether:aggregate/log@0.1.0",
            "aether:aggregate/log@0.2.0",
            "aether:aggregate/log@0.3.0",
            "aether:aggregate/log@0.4.0",
        ] {
            assert!(import_allowed(name), "{name} should be allowed");
        }
    }

    #[test]
    fn every_served_handler_version_is_recognised() {
        assert!(export_matches("aether:aggregate/handler@0.4.0"));
        assert!(export_matches("aether:aggregate/handler@0.3.0"));
        assert!(export_matches("aether:aggregate/handler@0.2.0"));
        assert!(export_matches("aether:aggregate/handler@0.1.0"));
        assert!(export_matches("aether:aggregate/handler@0.1.3"));
        assert!(!export_matches("aether:aggregate/handler@0.5.0"));
        assert!(!export_matches("aether:aggregate/handler"));
        assert!(!export_matches("acme:aggregate/handler@0.2.0"));
        assert!(exports_version("aether:aggregate/handler@0.2.1", "0.2."));
        assert!(!exports_version("aether:aggregate/handler@0.1.0", "0.2."));
    }

    #[test]
    fn a_preamble_refuses_junk_and_core_modules_from_as_few_bytes_as_decide() {
        // The preambles `wasm-tools` writes for `(component)` and `(module)`.
        let component = b"\0asm\x0d\0\x01\0";
        let module = b"\0asm\x01\0\0\0";
        for n in 0..=PREAMBLE_BYTES {
            assert!(
                check_preamble(&component[..n]).is_ok(),
                "{n} bytes of a component"
            );
        }
        for n in 0..PREAMBLE_BYTES {
            assert!(
                check_preamble(&module[..n]).is_ok(),
                "{n} bytes cannot tell"
            );
        }
        let core = check_preamble(module).unwrap_err().to_string();
        assert!(core.contains("a core WebAssembly module"), "{core}");
        let junk = check_preamble(b"PK").unwrap_err().to_string();
        assert!(junk.contains("(they start with 50 4b)"), "{junk}");
        assert!(check_preamble(b"\0a").is_ok());
        assert!(check_preamble(b"\0ax").is_err());
    }

    #[test]
    fn forbidden_imports() {
        for name in [
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:cli/environment@0.3.0",
            "wasi:keyvalue/store@0.2.0",
            "acme:exfiltrate/upload@1.0.0",
            "aether:aggregate/log@0.5.0",
            "aether:aggregate/log@1.0.0",
            "env",
            "wasi:cli/environment",
        ] {
            assert!(!import_allowed(name), "{name} should be refused");
        }
    }
}
