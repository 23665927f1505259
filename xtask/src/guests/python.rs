//! Builds the Python guests into `target/guest-components/` with
//! componentize-py: the examples written on the Python SDK
//! (`guest-sdk/python`, package `aether-guest`) — the bank account
//! (`examples/bank-account-py`, `bank_account_py.wasm`) and the order
//! (`examples/order-py`, `order_py.wasm`) — and the WASI probe
//! (`tests/programs/probe-py`, `probe_py.wasm`), which uses the bindings
//! directly.
//!
//! Before building, the SDK's and each guest's native tests run under plain
//! CPython (`python3 -m unittest`, no Wasm); a failure stops the build.
//!
//! The tool comes from PyPI at the version pinned in the bank-account
//! example's `requirements.txt` (the single source of truth for every Python
//! guest), installed once under `target/python-tools` and nowhere else: a
//! virtualenv made with `python3 -m venv`, or, where venv is unavailable
//! (Debian without `python3-venv`), a `pip install --target` folder. Nothing
//! is installed when the pinned version is already there, and a guest is not
//! rebuilt when its component is newer than every source (the guest's `.py`
//! files, the SDK's, the `requirements.txt` and `wit/`).
//!
//! componentize-py runs in a staging copy of the guest (and of the SDK's
//! package, `aether_guest/`) under `target/python-build`, so it neither
//! writes `__pycache__` into the source tree nor bundles the guest's tests,
//! and with `VIRTUAL_ENV` pointing at an empty site-packages, so what the
//! tool's own environment holds never ends up in the component. For an SDK
//! guest, the state-schema version the SDK derives from the state's fields
//! (`python -m aether_guest state-schema MODULE`) is then written into the
//! component's `aether:state-schema` custom section, so snapshots survive a
//! rebuild that keeps the state's shape, and only that.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

/// A Python guest: a folder of modules around the one componentize-py
/// builds, and the component it becomes.
pub(crate) struct Guest {
    /// The folder, relative to the workspace root.
    pub(crate) dir: &'static str,
    /// The module componentize-py builds (the one that exports).
    pub(crate) module: &'static str,
    /// Whether the guest is written on the SDK (`aether_guest`).
    pub(crate) sdk: bool,
    /// The component's file name in `target/guest-components`.
    pub(crate) output: &'static str,
}

/// The bank-account example.
pub(crate) const BANK_ACCOUNT: Guest = Guest {
    dir: "examples/bank-account-py",
    module: "bank_account",
    sdk: true,
    output: "bank_account_py.wasm",
};
/// The order example.
pub(crate) const ORDER: Guest = Guest {
    dir: "examples/order-py",
    module: "order",
    sdk: true,
    output: "order_py.wasm",
};
/// The aggregate that reaches for files, sockets, clocks and randomness.
pub(crate) const PROBE: Guest = Guest {
    dir: "tests/programs/probe-py",
    module: "app",
    sdk: false,
    output: "probe_py.wasm",
};

/// The `requirements.txt` pinning componentize-py for every Python guest.
const REQUIREMENTS: &str = "examples/bank-account-py/requirements.txt";
/// The Python SDK: its project folder and the package's source folder.
const SDK_DIR: &str = "guest-sdk/python";
const SDK_PACKAGE: &str = "guest-sdk/python/src/aether_guest";
/// The custom section the state-schema version goes into (the host's
/// `STATE_SCHEMA_SECTION`).
const STATE_SCHEMA_SECTION: &str = "aether:state-schema";
/// The WIT world an SDK guest targets: the SDK's glue implements 0.4.0
/// (`execute` decides a command and applies its events in one call and
/// hands them back as one batch; `apply` reads a replay batch as one
/// buffer).
const SDK_WORLD: &str = "aether:aggregate/aggregate-component@0.4.0";
/// The WIT world the probe targets: the frozen 0.1.0 (`apply` takes a
/// `list<event>`), so the tests keep proving that the host serves it.
const PROBE_WORLD: &str = "aether:aggregate/aggregate-component@0.1.0";
/// The package `requirements.txt` pins.
const TOOL: &str = "componentize-py";
/// Where the components are written, relative to the workspace root.
const OUTPUT_DIR: &str = "target/guest-components";
/// Where the tool is installed, relative to the workspace root.
const TOOLS_DIR: &str = "target/python-tools";
/// Scratch space for the builds, relative to the workspace root.
const BUILD_DIR: &str = "target/python-build";
/// The oldest Python componentize-py's wheels install on (`cp39-abi3`).
const MIN_PYTHON: (u32, u32) = (3, 9);
/// The oldest Python the SDK and the examples' native tests run on
/// (`match`, `kw_only` dataclass fields).
const MIN_SDK_PYTHON: (u32, u32) = (3, 10);

/// Runs the native tests of the SDK and of `guests`, then builds each of
/// `guests` whose component is older than a source, installing the pinned
/// componentize-py first if needed (once), and returns the components'
/// paths.
pub(crate) fn build(root: &Path, guests: &[Guest]) -> Result<Vec<PathBuf>> {
    test_natively(root, guests)?;
    let mut tools = None;
    guests
        .iter()
        .map(|guest| build_one(root, guest, &mut tools))
        .collect()
}

fn build_one(root: &Path, guest: &Guest, tools: &mut Option<Tools>) -> Result<PathBuf> {
    let dir = root.join(guest.dir);
    let output = root.join(OUTPUT_DIR).join(guest.output);
    let modules = python_modules(&dir, guest.module)?;
    let sdk_modules = if guest.sdk {
        python_modules(&root.join(SDK_PACKAGE), "__init__")?
    } else {
        Vec::new()
    };
    let requirements = root.join(REQUIREMENTS);
    let mut sources = modules.clone();
    sources.extend(sdk_modules.iter().cloned());
    sources.push(requirements.clone());
    collect_files(&root.join("wit"), &mut sources)?;
    if is_up_to_date(&output, &sources)? {
        eprintln!("xtask: {}: {} is up to date", guest.dir, guest.output);
        return Ok(output);
    }

    let tools = match tools {
        Some(tools) => tools,
        None => {
            let pin = read_pin(&requirements)?;
            tools.insert(Tools::install(&root.join(TOOLS_DIR), &pin)?)
        }
    };

    eprintln!("xtask: {}: componentize-py -> {}", guest.dir, guest.output);
    let build_dir = root.join(BUILD_DIR);
    let app_dir = build_dir.join(dir.file_name().context("a guest folder without a name")?);
    stage(&modules, &app_dir)?;
    if guest.sdk {
        let package = app_dir.join("aether_guest");
        fs::create_dir_all(&package).with_context(|| format!("creating {}", package.display()))?;
        copy_into(&sdk_modules, &package)?;
    }
    // componentize-py appends `$VIRTUAL_ENV/lib/*/site-packages` to the
    // Python path; an empty one keeps the tool's environment out.
    let no_packages = build_dir.join("no-site-packages");
    let site_packages = no_packages.join("lib/python3/site-packages");
    fs::create_dir_all(&site_packages)
        .with_context(|| format!("creating {}", site_packages.display()))?;

    let output_dir = root.join(OUTPUT_DIR);
    fs::create_dir_all(&output_dir)
        .with_context(|| format!("creating {}", output_dir.display()))?;
    // Written beside the output and renamed into place, so a failed build
    // never leaves a component that looks up to date.
    let partial = output_dir.join(format!("{}.partial", guest.output));
    let world = if guest.sdk { SDK_WORLD } else { PROBE_WORLD };
    let mut componentize = tools.componentize_py();
    componentize
        .arg("--quiet")
        .arg("--wit-path")
        .arg(root.join("wit"))
        .args(["--world", world, "componentize", guest.module])
        .arg("--python-path")
        .arg(&app_dir)
        .arg("--output")
        .arg(&partial)
        .current_dir(&app_dir)
        .env("VIRTUAL_ENV", &no_packages);
    let status = componentize
        .status()
        .with_context(|| format!("starting {componentize:?}"))?;
    if !status.success() {
        let _ = fs::remove_file(&partial);
        bail!(
            "componentize-py could not build {} ({status}); its output above names the \
             problem (a Python error in {}.py or the modules it imports, or a mismatch \
             with wit/)",
            guest.dir,
            guest.module,
        );
    }
    if guest.sdk {
        let schema = state_schema(&app_dir, guest.module)?;
        let bytes = fs::read(&partial).with_context(|| format!("reading {}", partial.display()))?;
        fs::write(
            &partial,
            with_custom_section(&bytes, STATE_SCHEMA_SECTION, schema.as_bytes()),
        )
        .with_context(|| format!("writing {}", partial.display()))?;
        eprintln!("xtask: {}: state schema {schema}", guest.dir);
    }
    fs::rename(&partial, &output)
        .with_context(|| format!("moving {} to {}", partial.display(), output.display()))?;
    let size = fs::metadata(&output).map(|m| m.len()).unwrap_or_default();
    eprintln!(
        "xtask: wrote {} ({:.1} MiB)",
        output.strip_prefix(root).unwrap_or(&output).display(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(output)
}

/// The Python modules in `dir` that go into the component: every `.py`
/// file beside `main` (`main.py` must exist), except tests (`test_*.py`).
fn python_modules(dir: &Path, main: &str) -> Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir)
        .with_context(|| format!("reading {}: is this an Aether checkout?", dir.display()))?;
    let mut modules = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let name = path.file_name().and_then(OsStr::to_str).unwrap_or_default();
        if path.is_file() && name.ends_with(".py") && !name.starts_with("test_") {
            modules.push(path);
        }
    }
    modules.sort();
    if !modules
        .iter()
        .any(|m| m.file_stem() == Some(OsStr::new(main)))
    {
        bail!("{} has no {main}.py to build", dir.display());
    }
    Ok(modules)
}

/// Adds every file under `dir` to `files`.
fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Whether `output` exists and is newer than every one of `sources`.
fn is_up_to_date(output: &Path, sources: &[PathBuf]) -> Result<bool> {
    let Ok(built) = fs::metadata(output).and_then(|m| m.modified()) else {
        return Ok(false);
    };
    for source in sources {
        if modified(source)? >= built {
            return Ok(false);
        }
    }
    Ok(true)
}

fn modified(path: &Path) -> Result<SystemTime> {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading the modification time of {}", path.display()))
}

/// Reads the pinned version from a `requirements.txt` line
/// `componentize-py==X.Y.Z`.
fn read_pin(requirements: &Path) -> Result<String> {
    let text = fs::read_to_string(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some((name, version)) = line.split_once("==") else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case(TOOL)
            || name.trim().eq_ignore_ascii_case("componentize_py")
        {
            // The version ends at a space or `;` (hashes, markers may follow).
            let version = version
                .split(|c: char| c.is_whitespace() || c == ';')
                .find(|part| !part.is_empty())
                .unwrap_or_default();
            if !version.is_empty()
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.')
            {
                return Ok(version.to_owned());
            }
        }
    }
    bail!(
        "{} does not pin {TOOL}: add a line `{TOOL}==<version>` (an exact version, e.g. 0.25.1)",
        requirements.display()
    )
}

/// Copies `modules` into a clean `dir`.
fn stage(modules: &[PathBuf], dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    copy_into(modules, dir)
}

/// Copies `files` into the folder `dir`.
fn copy_into(files: &[PathBuf], dir: &Path) -> Result<()> {
    for file in files {
        let name = file.file_name().context("a module without a file name")?;
        fs::copy(file, dir.join(name))
            .with_context(|| format!("copying {} to {}", file.display(), dir.display()))?;
    }
    Ok(())
}

/// Runs `python3 -m unittest` (plain CPython, no Wasm, no bytecode
/// written) for the SDK's tests and for each SDK guest with `test_*.py`
/// files, with the SDK's sources on the path.
fn test_natively(root: &Path, guests: &[Guest]) -> Result<()> {
    if !guests.iter().any(|g| g.sdk) {
        return Ok(());
    }
    let python = sdk_python()?;
    let sdk_src = root.join(SDK_DIR).join("src");
    let mut suites = vec![root.join(SDK_DIR).join("tests")];
    suites.extend(guests.iter().filter(|g| g.sdk).map(|g| root.join(g.dir)));
    for dir in suites {
        let name = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
        let mut unittest = Command::new(&python);
        unittest
            .args(["-B", "-m", "unittest", "discover", "--start-directory", "."])
            .current_dir(&dir)
            .env("PYTHONPATH", &sdk_src)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let output = unittest
            .output()
            .with_context(|| format!("starting {unittest:?}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!(
                "the native tests of {name} failed ({}):\n{stderr}\nrun them with \
                 `cd {name} && PYTHONPATH={} python3 -m unittest`",
                output.status,
                sdk_src.display()
            );
        }
        let summary = stderr
            .lines()
            .rfind(|l| l.starts_with("Ran "))
            .unwrap_or("no tests ran");
        eprintln!("xtask: {name}: native tests (CPython): {summary}, OK");
    }
    Ok(())
}

/// The state-schema version of the aggregate `module` exports, as the
/// SDK derives it (or the aggregate declares it), read under plain CPython
/// from the staged sources.
fn state_schema(app_dir: &Path, module: &str) -> Result<String> {
    let python = sdk_python()?;
    let mut command = Command::new(&python);
    command
        .args(["-B", "-m", "aether_guest", "state-schema", module])
        .current_dir(app_dir)
        .env("PYTHONPATH", app_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = command
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !output.status.success() {
        bail!(
            "reading the state schema of {module} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let schema = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if schema.is_empty() || schema.len() > 64 || !schema.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("the state schema of {module} is not 1 to 64 printable ASCII characters: {schema:?}");
    }
    Ok(schema)
}

/// `bytes` (a component) with a custom section `name` holding `data`
/// appended: a valid binary whose section the host reads.
fn with_custom_section(bytes: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
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
    out.push(0); // a custom section
    leb128(content.len(), &mut out);
    out.extend(content);
    out
}

/// The system Python, checked to be recent enough for the SDK.
fn sdk_python() -> Result<PathBuf> {
    let python = system_python()?;
    let out = Command::new(&python)
        .arg("-c")
        .arg(format!(
            "import sys; print(sys.version_info >= ({}, {}))",
            MIN_SDK_PYTHON.0, MIN_SDK_PYTHON.1
        ))
        .output()
        .with_context(|| format!("starting {}", python.display()))?;
    if String::from_utf8_lossy(&out.stdout).trim() != "True" {
        bail!(
            "the Python SDK's native tests need Python >= {}.{} ({} is older)",
            MIN_SDK_PYTHON.0,
            MIN_SDK_PYTHON.1,
            python.display()
        );
    }
    Ok(python)
}

/// An installation of componentize-py under `target/python-tools`.
struct Tools {
    /// The interpreter that runs it: the virtualenv's, or the system's with
    /// `pythonpath` set.
    python: PathBuf,
    /// Set for a `pip install --target` folder.
    pythonpath: Option<PathBuf>,
}

impl Tools {
    /// Makes sure `componentize-py==pin` is installed in `dir`.
    fn install(dir: &Path, pin: &str) -> Result<Self> {
        let tools = match Self::existing(dir) {
            Some(tools) => tools,
            None => Self::create(dir)?,
        };
        if has_version(dir, pin) {
            return Ok(tools);
        }
        eprintln!("xtask: installing {TOOL}=={pin} into {}", dir.display());
        let mut pip = crate::pip_install(tools.python_command());
        if let Some(target) = &tools.pythonpath {
            // Start from an empty folder: `pip install --target --upgrade`
            // would leave another version's metadata beside the new one.
            fs::remove_dir_all(target).with_context(|| format!("clearing {}", target.display()))?;
            fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
            pip.arg("--target").arg(target);
        }
        pip.arg(format!("{TOOL}=={pin}"));
        let status = pip.status().with_context(|| format!("starting {pip:?}"))?;
        if !status.success() || !has_version(dir, pin) {
            bail!(
                "installing {TOOL}=={pin} from PyPI into {} failed ({status}); pip's output is above. \
                 Check that PyPI is reachable and that {TOOL} {pin} has a wheel for this platform \
                 (it needs Python >= {}.{}); delete {} to start over",
                dir.display(),
                MIN_PYTHON.0,
                MIN_PYTHON.1,
                dir.display()
            );
        }
        Ok(tools)
    }

    /// The installation already in `dir`, if any.
    fn existing(dir: &Path) -> Option<Self> {
        if dir.join("pyvenv.cfg").is_file() {
            let python = venv_python(dir);
            return python.is_file().then_some(Self {
                python,
                pythonpath: None,
            });
        }
        if dir.join("componentize_py").is_dir() {
            return Some(Self {
                python: system_python().ok()?,
                pythonpath: Some(dir.to_path_buf()),
            });
        }
        None
    }

    /// Creates a virtualenv in `dir`, or prepares a `pip install --target`
    /// folder when venv (or its bundled pip) is unavailable.
    fn create(dir: &Path) -> Result<Self> {
        let python = system_python()?;
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        eprintln!("xtask: creating a Python virtualenv in {}", dir.display());
        let venv = Command::new(&python)
            .args(["-m", "venv"])
            .arg(dir)
            .output()
            .with_context(|| format!("starting `{} -m venv`", python.display()))?;
        let venv_python = venv_python(dir);
        if venv.status.success() && venv_python.is_file() {
            return Ok(Self {
                python: venv_python,
                pythonpath: None,
            });
        }
        eprintln!(
            "xtask: `python3 -m venv` is unavailable ({}); installing with `pip install --target` instead",
            String::from_utf8_lossy(&venv.stderr)
                .lines()
                .last()
                .unwrap_or("no output")
                .trim()
        );
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        let pip = Command::new(&python)
            .args(["-m", "pip", "--version"])
            .output()
            .with_context(|| format!("starting `{} -m pip`", python.display()))?;
        if !pip.status.success() {
            bail!(
                "{} has neither venv nor pip, so {TOOL} cannot be installed: install one of them \
                 (Debian/Ubuntu: `apt-get install python3-venv` or `apt-get install python3-pip`)",
                python.display()
            );
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            python,
            pythonpath: Some(dir.to_path_buf()),
        })
    }

    fn python_command(&self) -> Command {
        let mut command = Command::new(&self.python);
        if let Some(path) = &self.pythonpath {
            command.env("PYTHONPATH", path);
        }
        command
    }

    /// A command that runs componentize-py (arguments follow).
    fn componentize_py(&self) -> Command {
        let mut command = self.python_command();
        command.args([
            "-c",
            "import sys, componentize_py; sys.argv[0] = 'componentize-py'; sys.exit(componentize_py.script())",
        ]);
        command
    }
}

/// Whether `dir` holds `componentize-py` at exactly version `pin`.
fn has_version(dir: &Path, pin: &str) -> bool {
    let dist_info = format!("componentize_py-{pin}.dist-info");
    let mut candidates = vec![
        dir.join(&dist_info),
        dir.join("Lib/site-packages").join(&dist_info),
    ];
    if let Ok(entries) = fs::read_dir(dir.join("lib")) {
        candidates.extend(
            entries
                .flatten()
                .map(|e| e.path().join("site-packages").join(&dist_info)),
        );
    }
    candidates.iter().any(|c| c.is_dir())
}

/// The interpreter inside a virtualenv.
fn venv_python(dir: &Path) -> PathBuf {
    if cfg!(windows) {
        dir.join("Scripts").join("python.exe")
    } else {
        dir.join("bin").join("python")
    }
}

/// The first of `python3`, `python` on the PATH that is recent enough.
fn system_python() -> Result<PathBuf> {
    let mut found = Vec::new();
    for name in ["python3", "python"] {
        let Ok(out) = Command::new(name)
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            .output()
        else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let parsed = version.split_once('.').and_then(|(major, minor)| {
            Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
        });
        if parsed.is_some_and(|v| v >= MIN_PYTHON) {
            return Ok(PathBuf::from(name));
        }
        found.push(format!("{name} is {version}"));
    }
    if found.is_empty() {
        bail!(
            "no Python found (tried `python3` and `python`): the Python guests need Python >= {}.{} \
             to install {TOOL} (Debian/Ubuntu: `apt-get install python3 python3-venv`)",
            MIN_PYTHON.0,
            MIN_PYTHON.1
        );
    }
    bail!(
        "the Python guests need Python >= {}.{} to install {TOOL}, but {}",
        MIN_PYTHON.0,
        MIN_PYTHON.1,
        found.join(" and ")
    )
}
