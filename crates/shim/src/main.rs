//! `containerd-shim-wasmlayer-v1`: a containerd shim (runwasi's
//! `containerd-shim-wasm`) that runs containers whose image holds a Wasm
//! module or component with wasmlayer-core, the engine `wasmlayer run` uses.
//!
//! - The entrypoint comes from the image: a CNCF Wasm artifact's
//!   `application/wasm` layer, or the `.wasm` file the process args name in
//!   the container's root filesystem.
//! - The container runs in its own namespaces and cgroup (youki, as with
//!   runc). The guest gets the rootfs's directories and its mounts (never
//!   `/proc`, `/sys`, `/dev`) as preopened directories, the process args
//!   after `argv[0]` as arguments, and the spec's env and nothing else.
//! - stdout and stderr are containerd's (already the process's fds).
//! - Read-only mounts (and a read-only rootfs) are granted read-only.
//! - The memory cgroup's limit (`linux.resources.memory.limit`) is the
//!   guest's memory limit.
//! - The shim's configuration (`WASMLAYER_SHIM_CONFIG`, else
//!   `/etc/wasmlayer/shim.toml`) can name an admission policy and default
//!   limits. A denied container exits with 77, and the reason goes to its
//!   log and to `/dev/termination-log` (Kubernetes shows it as the
//!   container's termination message).
//! - SIGTERM ends the guest (exit 143) even in a loop; SIGKILL is the kernel's.
//! - Wasm layers are compiled once per image by the shim (runwasi keeps the
//!   result in containerd's content store), and modules in image files once
//!   per node (the shim's compile cache), so a second container of the same
//!   image compiles nothing.

use anyhow::Result;
use containerd_shim_wasm::sandbox::context::{Entrypoint, RuntimeContext, Source, WasmLayer};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::shim::{version, Cli, Compiler, Config, Shim, Version};
use std::sync::Arc;
use wasmlayer_core::{AdmissionContext, Capabilities, Error, LoadOptions, RunOptions, Runtime};

mod config;
mod container;
use config::ShimConfig;

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

/// The runtime the shim precompiles Wasm layers with: the same engine
/// configuration as `run` (no fuel metering, no pooling), without a compile
/// cache: containerd keeps what [`WasmlayerCompiler`] compiles next to the
/// image.
fn runtime() -> Result<Runtime, Error> {
    Runtime::builder().cache(false).build()
}

/// The runtime a container runs on: the engine of [`runtime`], the
/// shim's compile cache (for modules that come as files in the image), and
/// the configured admission policy, built inside the container from the
/// policy the shim read before it started (a Wasm policy through the same
/// cache).
fn container_runtime(config: &ShimConfig) -> Result<Runtime, Error> {
    let cache = |builder: wasmlayer_core::RuntimeBuilder| match config.cache_dir() {
        Some(dir) => builder.cache_dir(Some(dir)),
        None => builder.cache(false),
    };
    let mut builder = cache(Runtime::builder());
    if let Some(policy) = &config.policy {
        // A Wasm policy is compiled into the shim's cache too, never into
        // the container's root.
        wasmlayer_policy::init_policy_runtime(cache)?;
        let admission = wasmlayer_policy::admission::PolicyAdmission::from_source(
            &policy.source,
            &policy.paths,
        )?;
        builder = builder.admission(Arc::new(admission));
    }
    builder.build()
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
    /// Every container that is not a Linux executable is ours (runwasi
    /// asks after that check): one whose image holds no Wasm fails in
    /// [`Sandbox::run_wasi`], where the reason reaches the container's log
    /// and termination message, rather than here, where runwasi would
    /// replace it with "can't handle spec".
    async fn can_handle(&self, _ctx: &impl RuntimeContext) -> Result<()> {
        Ok(())
    }

    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let Entrypoint {
            name, arg0, source, ..
        } = ctx.entrypoint();
        let precompiled = source.is_precompiled().unwrap_or(false);
        let bytes = match entrypoint_bytes(&source) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(fail(&e)),
        };
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

/// The entrypoint's bytes: a Wasm layer, or the Wasm file the args name
/// in the container's root.
fn entrypoint_bytes(source: &Source<'_>) -> Result<Vec<u8>, Error> {
    let path = match source {
        Source::File(path) => path,
        Source::Oci(_) => {
            return source
                .as_bytes()
                .map(|b| b.into_owned())
                .map_err(|e| Error::invalid(format!("the image's Wasm layer: {e}")));
        }
    };
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::invalid(format!(
            "the image holds no Wasm: {} does not exist in the container",
            path.display()
        )),
        _ => Error::invalid(format!("{}: {e}", path.display())),
    })?;
    let text = path.extension().is_some_and(|x| x == "wat");
    if bytes.starts_with(b"\0asm") || text {
        Ok(bytes)
    } else {
        Err(Error::invalid(format!(
            "the image holds no Wasm: {} is neither a Wasm module or component nor a Linux executable",
            path.display()
        )))
    }
}

/// Runs the guest to its end: its exit code, or the error's.
fn run(name: &str, bytes: &[u8], precompiled: bool, args: &[String], envs: &[String]) -> i32 {
    match try_run(name, bytes, precompiled, args, envs) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Reports `e` on the container's stderr (its log) and as its termination
/// message: the exit code.
fn fail(e: &Error) -> i32 {
    let message = format!("wasmlayer: error: {e}");
    eprintln!("{message}");
    container::termination_message(&message);
    e.exit_code()
}

fn try_run(
    name: &str,
    bytes: &[u8],
    precompiled: bool,
    args: &[String],
    envs: &[String],
) -> Result<i32, Error> {
    let config = config::get().map_err(|e| Error::usage(e.clone()))?;
    let runtime = container_runtime(config)?;
    let loaded = runtime.load_bytes(
        name,
        bytes,
        LoadOptions {
            // Compiled by this shim's compiler and kept by containerd.
            allow_precompiled: precompiled,
        },
    )?;
    log::info!("{name}: {:?}", loaded.cache);
    let mut caps = Capabilities::default();
    caps.dirs = container::mounts();
    for kv in envs {
        if let Some((k, v)) = kv.split_once('=') {
            caps.env.insert(k.to_string(), v.to_string());
        }
    }
    caps.args = args.iter().skip(1).cloned().collect();
    let mut limits = config.limits.clone();
    if let Some(cgroup) = container::memory_limit() {
        limits.max_memory = Some(limits.max_memory.map_or(cgroup, |m| m.min(cgroup)));
    }
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

fn main() {
    // Read here, in the shim's process: the container runs in a clone of
    // it, after its root has changed to the image's.
    config::load();
    container::open_host_cgroups();
    WasmlayerShim::run(Config {
        default_log_level: "info".to_string(),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(bytes: &[u8], precompiled: bool) -> WasmLayer {
        serde_json::from_value(serde_json::json!({
            "config": {
                "mediaType": "application/wasm",
                "digest": format!("sha256:{}", "0".repeat(64)),
                "size": bytes.len(),
            },
            "precompiled": precompiled,
            "layer": bytes,
        }))
        .unwrap()
    }

    /// A Wasm (OPA ABI) admission policy is compiled into the shim's
    /// compile cache, which the container reaches through the open
    /// directory, and not into the container's `$HOME/.cache`.
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

    /// The artifact path (containerd 1.6.25+ hands the shim the image's
    /// `application/wasm` layers): the shim compiles each layer once, and a
    /// container runs the compiled code only when it is marked so.
    #[test]
    fn wasm_layers_are_compiled_once_and_run_precompiled() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("shim.toml");
        std::fs::write(&conf, "cache = false\n").unwrap();
        std::env::set_var(config::ENV, &conf);
        let wasm = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/guests/hostile-p1.wasm"),
        )
        .expect("run scripts/build-guests.sh");
        let compiler = WasmlayerCompiler(Arc::new(runtime().unwrap()));
        let out = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(compiler.compile(&[layer(&wasm, false), layer(b"kept", true)]))
            .unwrap();
        assert!(out[1].is_none(), "an already compiled layer is kept");
        let compiled = out[0].as_ref().expect("the Wasm layer is compiled");
        let args = ["/hostile.wasm".to_string(), "exit".into(), "7".into()];
        assert_eq!(try_run("hostile", compiled, true, &args, &[]).unwrap(), 7);
        // Compiled code is refused unless containerd marked it so.
        let e = try_run("hostile", compiled, false, &args, &[]).unwrap_err();
        assert_eq!(e.exit_code(), 126, "{e}");
        // Garbage in a layer: a clear error, no panic.
        let e = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(compiler.compile(&[layer(b"\0asm\x01\0\0\0garbage", false)]))
            .unwrap_err();
        assert!(!e.to_string().is_empty());
    }
}
