//! `containerd-shim-wasmlayer-v1`: a containerd shim (runwasi's
//! `containerd-shim-wasm`) that runs containers whose image holds a Wasm
//! module or component with wasmlayer-core, the engine `wasmlayer run` uses.
//!
//! - The entrypoint comes from the image: a CNCF Wasm artifact's
//!   `application/wasm` layer, or the `.wasm` file the process args name in
//!   the container's root filesystem.
//! - The container runs in its own namespaces and cgroup (youki, as with
//!   runc), so the guest gets `/` (the rootfs with its mounts) as a
//!   preopened directory, the process args after `argv[0]` as arguments, and
//!   the spec's env and nothing else.
//! - stdout and stderr are containerd's (already the process's fds).
//! - The memory cgroup's limit, when the container can read it, is the
//!   guest's memory limit.
//! - SIGTERM ends the guest (exit 143) even in a loop; SIGKILL is the kernel's.
//! - Wasm layers are compiled once per image by the shim (runwasi keeps the
//!   result in containerd's content store), so a second container of the
//!   same image compiles nothing.

use anyhow::Result;
use containerd_shim_wasm::sandbox::context::{Entrypoint, RuntimeContext, WasmLayer};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::shim::{version, Cli, Compiler, Config, Shim, Version};
use std::sync::Arc;
use wasmlayer_core::{
    AdmissionContext, Capabilities, DirGrant, Error, Limits, LoadOptions, RunOptions, Runtime,
};

struct WasmlayerShim;

#[derive(Default)]
struct WasmlayerSandbox;

impl Shim for WasmlayerShim {
    fn name() -> &'static str {
        "wasmlayer"
    }

    fn version() -> Version {
        version!()
    }

    type Sandbox = WasmlayerSandbox;

    #[allow(refining_impl_trait)]
    async fn compiler() -> Option<WasmlayerCompiler> {
        match runtime() {
            Ok(runtime) => Some(WasmlayerCompiler(Arc::new(runtime))),
            Err(e) => {
                log::warn!("no precompilation: {e}");
                None
            }
        }
    }
}

/// The runtime of the shim and its containers: the same engine
/// configuration as `run` (no fuel metering, no pooling), without a compile
/// cache of its own: containerd keeps what [`WasmlayerCompiler`] compiles
/// next to the image, and the container has no cache to share.
fn runtime() -> Result<Runtime, Error> {
    Runtime::builder().cache(false).build()
}

/// Compiles Wasm layers once per image, in the shim process; containerd
/// keeps the result next to the image.
struct WasmlayerCompiler(Arc<Runtime>);

impl Compiler for WasmlayerCompiler {
    fn cache_key(&self) -> impl std::hash::Hash {
        wasmlayer_core::runtime::engine_id(self.0.engine())
    }

    async fn compile(&self, layers: &[WasmLayer]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(layers.len());
        for layer in layers {
            if layer.precompiled {
                out.push(None);
                continue;
            }
            let loaded = self
                .0
                .load_bytes("layer", &layer.layer, LoadOptions::default())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            out.push(Some(
                self.0
                    .to_precompiled(&loaded.compiled)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            ));
        }
        Ok(out)
    }
}

impl Sandbox for WasmlayerSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let Entrypoint {
            name, arg0, source, ..
        } = ctx.entrypoint();
        let precompiled = source.is_precompiled().unwrap_or(false);
        let bytes = source.as_bytes()?.into_owned();
        let name = name
            .or_else(|| arg0.map(|p| p.display().to_string()))
            .unwrap_or_else(|| "wasm".into());
        let args = ctx.args().to_vec();
        let envs = ctx.envs().to_vec();
        // PID 1 of its namespace: without a handler SIGTERM would be dropped.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let guest =
            tokio::task::spawn_blocking(move || run(&name, &bytes, precompiled, &args, &envs));
        tokio::select! {
            r = guest => Ok(r?),
            _ = term.recv() => {
                eprintln!("wasmlayer: stopped by SIGTERM");
                Ok(143)
            }
        }
    }
}

/// Runs the guest to its end: its exit code, or the error's (printed to
/// the container's stderr, so it shows in its log).
fn run(name: &str, bytes: &[u8], precompiled: bool, args: &[String], envs: &[String]) -> i32 {
    match try_run(name, bytes, precompiled, args, envs) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wasmlayer: error: {e}");
            e.exit_code()
        }
    }
}

fn try_run(
    name: &str,
    bytes: &[u8],
    precompiled: bool,
    args: &[String],
    envs: &[String],
) -> Result<i32, Error> {
    let runtime = runtime()?;
    let loaded = runtime.load_bytes(
        name,
        bytes,
        LoadOptions {
            // Compiled by this shim's compiler and kept by containerd.
            allow_precompiled: precompiled,
        },
    )?;
    let mut caps = Capabilities::default();
    caps.dirs.push(DirGrant {
        host: "/".into(),
        guest: "/".into(),
        read_only: false,
    });
    for kv in envs {
        if let Some((k, v)) = kv.split_once('=') {
            caps.env.insert(k.to_string(), v.to_string());
        }
    }
    caps.args = args.iter().skip(1).cloned().collect();
    let limits = Limits {
        max_memory: cgroup_memory_limit(),
        ..Default::default()
    };
    let outcome = runtime.run(
        &loaded,
        RunOptions {
            capabilities: caps,
            limits,
            program_name: args.first().cloned().unwrap_or_else(|| name.to_string()),
            context: AdmissionContext {
                command: "shim".into(),
                route: None,
            },
            ..Default::default()
        },
    )?;
    Ok(outcome.exit_code)
}

/// The memory cgroup's limit as the container sees it (v2, then v1); none
/// when it is unlimited or not visible.
fn cgroup_memory_limit() -> Option<u64> {
    for file in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Ok(text) = std::fs::read_to_string(file) {
            let text = text.trim();
            if let Ok(n) = text.parse::<u64>() {
                // v1 reports "unlimited" as a huge page-aligned number.
                if n < (1 << 62) {
                    return Some(n);
                }
            }
            return None;
        }
    }
    None
}

fn main() {
    WasmlayerShim::run(Config {
        default_log_level: "info".to_string(),
        ..Default::default()
    });
}
