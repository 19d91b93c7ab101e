//! `containerd-shim-wasmlayer-v1`: a containerd shim (on runwasi's
//! `containerd-shimkit`, containerd's shim task API) that runs containers
//! whose image holds a Wasm module or component with wasmlayer-core, the
//! engine `wasmlayer run` uses.
//!
//! - One shim process per pod (containerd groups a pod's containers by
//!   its sandbox id); each guest runs on a thread of it, with no process,
//!   namespaces or cgroup of its own: the Wasm sandbox is the isolation.
//!   The pod's sandbox (`pause`) container runs nothing.
//! - The entrypoint comes from the image: the `.wasm` file the process
//!   args name in the container's root filesystem, or a CNCF Wasm
//!   artifact's `application/wasm` layer, read from containerd's content
//!   store and checked against its digest.
//! - The guest gets the root's top-level directories and the spec's
//!   directory bind mounts (never `/proc`, `/sys`, `/dev`) as preopened
//!   directories, read-only where mounted so (or where the root is); the
//!   process args after `argv[0]` as arguments; the spec's env and nothing
//!   else; containerd's FIFOs as stdin, stdout and stderr.
//! - `linux.resources.memory.limit` is the guest's memory limit.
//! - The shim's configuration (`WASMLAYER_SHIM_CONFIG`, else
//!   `/etc/wasmlayer/shim.toml`) can name an admission policy and default
//!   limits.
//! - What keeps a container from running (no Wasm in the image, a mount
//!   whose source is missing, an admission denial, a module that does not
//!   load) fails its creation with the reason, which containerd and
//!   Kubernetes show in its status. A guest's own failure (a trap, its
//!   memory limit, its timeout) ends it with the error's exit code and the
//!   reason in its log and termination message.
//! - SIGTERM and SIGKILL end a guest within a tick of the epoch (10 ms)
//!   even in a loop, with 143 and 137.
//! - Modules are compiled once per node into the shim's compile cache, so
//!   a second container of the same image compiles nothing.

use containerd_shimkit::sandbox::cli::shim_main;
use containerd_shimkit::{shim_version, Config};
use std::sync::Arc;
use wasmlayer_core::{Error, Runtime};

mod config;
mod instance;
mod layers;
mod spec;
use config::ShimConfig;

/// The runtime containers run on: the engine configuration of `run`, the
/// shim's compile cache, and the configured admission policy (a Wasm
/// policy is compiled into the same cache).
fn container_runtime(config: &ShimConfig) -> Result<Runtime, Error> {
    let cache = |builder: wasmlayer_core::RuntimeBuilder| match &config.cache {
        Some(dir) => builder.cache_dir(Some(dir.clone())),
        None => builder.cache(false),
    };
    let mut builder = cache(Runtime::builder());
    if let Some(policy) = &config.policy {
        wasmlayer_policy::init_policy_runtime(cache)?;
        let admission = wasmlayer_policy::admission::PolicyAdmission::from_source(
            &policy.source,
            &policy.paths,
        )?;
        builder = builder.admission(Arc::new(admission));
    }
    builder.build()
}

fn main() {
    // The configuration is read when the first container needs it, in the
    // pod's shim process: containerd's short-lived `start` and `delete`
    // invocations of this binary never read it.
    shim_main::<instance::WasmInstance>(
        "wasmlayer",
        shim_version!(),
        Some(Config {
            default_log_level: "info".to_string(),
            ..Default::default()
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmlayer_core::{AdmissionContext, Capabilities, LoadOptions, RunOptions};

    /// A Wasm (OPA ABI) admission policy is compiled into the shim's
    /// compile cache, not into `$HOME/.cache` of the process containerd
    /// starts the shim in.
    #[test]
    fn a_wasm_policy_compiles_into_the_shims_cache() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::env::set_var("HOME", &home);
        std::env::remove_var("XDG_CACHE_HOME");
        let rego = "package wasmlayer.admission\n\ndefault allow := false\n\nallow if count(reasons) == 0\n\nreasons contains \"untrusted\" if input.requested.env.TIER == \"untrusted\"\n";
        let module =
            wasmlayer_policy::wasm_build::build_module(&wasmlayer_policy::wasm_build::BuildInput {
                modules: vec![("admission.rego".into(), rego.into())],
                entrypoints: vec!["wasmlayer/admission".into()],
                ..Default::default()
            })
            .unwrap();
        std::fs::write(dir.path().join("admission.wasm"), module).unwrap();
        let cache = dir.path().join("cache");
        let conf = dir.path().join("shim.toml");
        std::fs::write(
            &conf,
            format!("policy = \"admission.wasm\"\ncache_dir = {cache:?}\n"),
        )
        .unwrap();
        let config = config::read_file(&conf).unwrap();
        let runtime = container_runtime(&config).unwrap();
        let files = |d: &std::path::Path| {
            walk(d)
                .into_iter()
                .filter(|p| p.is_file())
                .collect::<Vec<_>>()
        };
        assert!(
            !files(&cache).is_empty(),
            "the policy is in the shim's cache"
        );
        assert!(files(&home).is_empty(), "{:?}", files(&home));

        // ... and decides.
        let wasm = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/guests/hostile-p1.wasm"),
        )
        .expect("run scripts/build-guests.sh");
        let loaded = runtime
            .load_bytes("hostile", &wasm, LoadOptions::default())
            .unwrap();
        let run = |tier: &str| {
            let mut caps = Capabilities::default();
            caps.env.insert("TIER".into(), tier.into());
            caps.args = vec!["exit".into(), "7".into()];
            runtime.run(
                &loaded,
                RunOptions {
                    capabilities: caps,
                    context: AdmissionContext {
                        command: "shim".into(),
                        route: None,
                    },
                    ..Default::default()
                },
            )
        };
        assert_eq!(run("trusted").unwrap().exit_code, 7);
        let e = run("untrusted").unwrap_err();
        assert_eq!(e.exit_code(), 77, "{e}");
        assert!(e.to_string().contains("untrusted"), "{e}");
    }

    fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }
}
