//! The shim's configuration: the file `WASMLAYER_SHIM_CONFIG` names, else
//! `/etc/wasmlayer/shim.toml` when it exists (containerd passes its own
//! environment to the shims it starts).
//!
//! ```toml
//! policy = "/etc/wasmlayer/admission.rego"   # or a list of files
//! cache_dir = "/var/lib/wasmlayer/cache"      # the default; cache = false: none
//! host_sandbox = true     # the default: each guest's thread is confined
//! [limits]                                    # every container's defaults
//! timeout = "10m"
//! fuel = 10_000_000_000
//! max_memory = "512MiB"   # the container's memory limit can lower it
//! ```
//!
//! It is read once per shim process (one per pod), before any container
//! starts. A configuration that cannot be read fails every container's
//! creation with the reason. Containers of the same module share the
//! compile cache, so only the first one on a node compiles.

use serde::Deserialize;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wasmlayer_core::Limits;
use wasmlayer_policy::PolicySource;

pub const ENV: &str = "WASMLAYER_SHIM_CONFIG";
pub const DEFAULT_PATH: &str = "/etc/wasmlayer/shim.toml";
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/wasmlayer/cache";

/// What containers run with.
#[derive(Debug, Default)]
pub struct ShimConfig {
    pub policy: Option<ReadPolicy>,
    pub limits: Limits,
    /// The compile cache's directory; none when off or when it could not
    /// be made.
    pub cache: Option<PathBuf>,
    /// Confine each guest's thread (Landlock, seccomp) before it runs.
    pub host_sandbox: bool,
}

/// An admission policy, read from its files.
#[derive(Debug)]
pub struct ReadPolicy {
    pub paths: Vec<PathBuf>,
    pub source: PolicySource,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct File {
    policy: Paths,
    limits: Limits,
    cache: bool,
    cache_dir: Option<PathBuf>,
    host_sandbox: bool,
}

impl Default for File {
    fn default() -> Self {
        File {
            policy: Paths::None,
            limits: Limits::default(),
            cache: true,
            cache_dir: None,
            host_sandbox: true,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Paths {
    #[default]
    None,
    One(PathBuf),
    Many(Vec<PathBuf>),
}

static CONFIG: OnceLock<Result<ShimConfig, String>> = OnceLock::new();

/// The configuration, or why it could not be read.
pub fn get() -> Result<&'static ShimConfig, &'static String> {
    CONFIG.get_or_init(read).as_ref()
}

fn read() -> Result<ShimConfig, String> {
    match std::env::var_os(ENV) {
        Some(path) if !path.is_empty() => read_file(Path::new(&path)),
        _ if Path::new(DEFAULT_PATH).exists() => read_file(Path::new(DEFAULT_PATH)),
        _ => Ok(from_file(File::default(), None)),
    }
}

fn from_file(file: File, policy: Option<ReadPolicy>) -> ShimConfig {
    let cache = file.cache.then(|| {
        let dir = file
            .cache_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map(|()| dir.clone())
            .map_err(|e| log::warn!("no compile cache at {}: {e}", dir.display()))
            .ok()
    });
    ShimConfig {
        policy,
        limits: file.limits,
        cache: cache.flatten(),
        host_sandbox: file.host_sandbox,
    }
}

/// Reads one configuration file; relative policy paths are relative to it.
pub fn read_file(path: &Path) -> Result<ShimConfig, String> {
    let at = |e: &dyn std::fmt::Display| format!("shim configuration {}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| at(&e))?;
    let mut file: File = toml::from_str(&text).map_err(|e| at(&e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let paths: Vec<PathBuf> = match std::mem::take(&mut file.policy) {
        Paths::None => Vec::new(),
        Paths::One(p) => vec![p],
        Paths::Many(ps) => ps,
    }
    .into_iter()
    .map(|p| base.join(p))
    .collect();
    let policy = if paths.is_empty() {
        None
    } else {
        let source = PolicySource::read(&paths, None).map_err(|e| at(&e))?;
        Some(ReadPolicy { paths, source })
    };
    Ok(from_file(file, policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_policy_and_limits_and_names_the_file_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("admission.rego"),
            "package wasmlayer.admission\nallow := true\n",
        )
        .unwrap();
        let conf = dir.path().join("shim.toml");
        std::fs::write(
            &conf,
            "policy = \"admission.rego\"\ncache = false\n[limits]\ntimeout = \"5s\"\nmax_memory = \"64MiB\"\n",
        )
        .unwrap();
        let c = read_file(&conf).unwrap();
        assert_eq!(c.limits.max_memory, Some(64 << 20));
        assert_eq!(c.limits.timeout, Some(std::time::Duration::from_secs(5)));
        let p = c.policy.unwrap();
        assert_eq!(p.paths, vec![dir.path().join("admission.rego")]);
        assert!(matches!(p.source, PolicySource::Rego(_)));
        assert!(c.cache.is_none());

        let cache = dir.path().join("cache");
        std::fs::write(&conf, format!("cache_dir = {:?}\n", cache)).unwrap();
        let c = read_file(&conf).unwrap();
        assert!(cache.is_dir());
        assert_eq!(c.cache, Some(cache.clone()));

        // The configuration deploy/k8s ships parses, with its limits.
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/shim.toml");
        let text = std::fs::read_to_string(&shipped).unwrap();
        let text = text.replace("/var/lib/wasmlayer/cache", &cache.display().to_string());
        std::fs::write(&conf, text).unwrap();
        let c = read_file(&conf).unwrap();
        assert_eq!(c.limits.max_memory, Some(512 << 20));
        assert_eq!(c.limits.timeout, Some(std::time::Duration::from_secs(3600)));

        std::fs::write(&conf, "polcy = \"x.rego\"\n").unwrap();
        let e = read_file(&conf).unwrap_err();
        assert!(e.contains("shim.toml") && e.contains("polcy"), "{e}");
        std::fs::write(&conf, "policy = \"missing.rego\"\n").unwrap();
        let e = read_file(&conf).unwrap_err();
        assert!(e.contains("missing.rego"), "{e}");
    }
}
