//! Finding and loading the ONNX Runtime shared library.
//!
//! The library is loaded at run time (the `ort` crate's `load-dynamic`), so
//! `wasmlayer` starts without it and only a guest granted a model needs it.
//! `WASMLAYER_ORT_LIB` names the file; otherwise it is looked for next to
//! the executable, in the `onnxruntime` Python package (PyPI's wheel ships
//! `onnxruntime/capi/libonnxruntime.so.*`) and in the system's library
//! directories. The library is opened and its version checked here, before
//! `ort` (which would panic on a missing or too old library) touches it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable that names the library file.
pub const ENV: &str = "WASMLAYER_ORT_LIB";

/// The ONNX Runtime minor release the `ort` crate speaks (1.22): older
/// libraries lack its API.
pub const MINOR_VERSION: u32 = ort::MINOR_VERSION;

/// The library in use: its path and version, or why there is none (the
/// places looked in, and how to point at one). Found and loaded once.
pub fn ensure() -> Result<&'static Loaded, String> {
    static LOADED: OnceLock<Result<Loaded, String>> = OnceLock::new();
    LOADED.get_or_init(load).as_ref().map_err(Clone::clone)
}

#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub version: String,
}

fn load() -> Result<Loaded, String> {
    let (path, looked) = match std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            if !p.is_file() {
                return Err(format!(
                    "ONNX Runtime library not found: {ENV} names {}, which is not a file",
                    p.display()
                ));
            }
            (p, Vec::new())
        }
        None => {
            let mut candidates = candidates();
            let found = candidates
                .iter()
                .find(|p| p.is_file())
                .cloned()
                .or_else(|| {
                    // Last, the package of the Python on PATH (pyenv, venvs).
                    let capi = python_package()?;
                    let so =
                        versioned_library(&capi).unwrap_or_else(|| capi.join("libonnxruntime.so"));
                    candidates.push(so.clone());
                    so.is_file().then_some(so)
                });
            match found {
                Some(p) => (p, candidates.clone()),
                None => {
                    let dirs: Vec<String> = candidates
                        .iter()
                        .filter_map(|p| p.parent().map(|d| d.display().to_string()))
                        .fold(Vec::new(), |mut v, d| {
                            if !v.contains(&d) {
                                v.push(d);
                            }
                            v
                        });
                    return Err(format!(
                        "ONNX Runtime library (libonnxruntime.so) not found; looked in {} and in python3's onnxruntime package. Install it (`pip install onnxruntime==1.{MINOR_VERSION}.*`, which scripts/setup.sh does) or set {ENV} to the library's path",
                        dirs.join(", ")
                    ));
                }
            }
        }
    };
    let version = check(&path).map_err(|e| {
        let hint = if looked.is_empty() {
            String::new()
        } else {
            format!(" (set {ENV} to use another)")
        };
        format!("ONNX Runtime library {}: {e}{hint}", path.display())
    })?;
    // `ort` opens the same file again (the loader shares the handle) and
    // creates its environment: one per process.
    let _ = ort::init_from(path.display().to_string())
        .with_name("wasmlayer")
        .commit();
    Ok(Loaded { path, version })
}

/// Opens the library and reads its version: at least 1.MINOR_VERSION.
fn check(path: &Path) -> Result<String, String> {
    // SAFETY: loading ONNX Runtime runs its initialisers, which is what
    // the library is for; the handle is kept for the process's life.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    let version = unsafe {
        let get: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> = lib
            .get(b"OrtGetApiBase")
            .map_err(|_| "not an ONNX Runtime library (no OrtGetApiBase)".to_string())?;
        let base = get();
        if base.is_null() {
            return Err("OrtGetApiBase returned nothing".into());
        }
        let v = ((*base).GetVersionString)();
        std::ffi::CStr::from_ptr(v).to_string_lossy().into_owned()
    };
    std::mem::forget(lib);
    let minor = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    if !version.starts_with("1.") || minor < MINOR_VERSION {
        return Err(format!(
            "version {version} is too old; 1.{MINOR_VERSION} or later is needed"
        ));
    }
    Ok(version)
}

/// Where the library is looked for, in order.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join("libonnxruntime.so"));
        out.push(dir.join("../lib/libonnxruntime.so"));
    }
    // The onnxruntime Python package, wherever pip put it.
    let mut site = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        site.push(PathBuf::from(home).join(".local/lib"));
    }
    for prefix in ["/usr/local/lib", "/usr/lib"] {
        site.push(PathBuf::from(prefix));
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        site.insert(0, PathBuf::from(venv).join("lib"));
    }
    for lib in site {
        for py in named_like(&lib, "python3").into_iter().rev() {
            for packages in ["dist-packages", "site-packages"] {
                let capi = py.join(packages).join("onnxruntime/capi");
                if let Some(so) = versioned_library(&capi) {
                    out.push(so);
                } else {
                    out.push(capi.join("libonnxruntime.so"));
                }
            }
        }
    }
    for dir in [
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ] {
        out.push(Path::new(dir).join("libonnxruntime.so"));
    }
    out
}

/// The `onnxruntime/capi` directory of the `python3` on PATH, if it has the package.
fn python_package() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u, os; s = u.find_spec('onnxruntime'); print(os.path.join(os.path.dirname(s.origin), 'capi') if s else '')",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = dir.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `libonnxruntime.so.1.X.Y` in `dir` (the wheel ships only the versioned name).
fn versioned_library(dir: &Path) -> Option<PathBuf> {
    named_like(dir, "libonnxruntime.so").pop()
}

/// The entries of `dir` whose names start with `prefix`, sorted (none when
/// it cannot be read).
fn named_like(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}
