//! A container on the shim: the pod's sandbox, or a Wasm guest that runs
//! on a thread of the shim's process (one shim process per pod, as
//! containerd groups a pod's containers), with wasmlayer-core's runtime.
//! Whatever keeps a guest from running (an image without Wasm, a mount
//! whose source is missing, an admission denial, a module that does not
//! compile) fails the task's creation with the reason: it is what
//! containerd, and Kubernetes, show in the container's status.

use crate::{config, layers, spec};
use chrono::{DateTime, Utc};
use containerd_shimkit::sandbox::sync::WaitableCell;
use containerd_shimkit::sandbox::{Error as ShimError, Instance, InstanceConfig};
use oci_spec::runtime::Spec;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Notify;
use wasmlayer_core::{
    AdmissionContext, Capabilities, Error, HostSandbox, Interrupt, Limits, LoadOptions, Loaded,
    RunOptions, Runtime, Stdio, Stream,
};

/// Stack of a guest's thread: room for the guest's WebAssembly stack plus
/// the host's own frames.
const GUEST_STACK: usize = 8 << 20;

type Exit = WaitableCell<(u32, DateTime<Utc>)>;

pub struct WasmInstance {
    id: String,
    exit: Exit,
    /// The signal that stopped it, if one did.
    signal: Arc<AtomicU32>,
    interrupt: Interrupt,
    /// A guest, not the pod's sandbox.
    is_guest: bool,
    /// Wakes a guest that waits in a host call (a sleep, a read).
    stop: Arc<Notify>,
    guest: Mutex<Option<Prepared>>,
}

/// A guest ready to start.
struct Prepared {
    runtime: Arc<Runtime>,
    loaded: Loaded,
    opts: RunOptions,
    /// Where errors go: the container's stderr and termination message,
    /// both opened before the guest's thread is confined.
    stderr: Option<File>,
    termination_log: Option<File>,
}

fn failed(e: impl std::fmt::Display) -> ShimError {
    ShimError::Others(format!("wasmlayer: {e}"))
}

impl Instance for WasmInstance {
    async fn new(id: String, cfg: &InstanceConfig) -> Result<Self, ShimError> {
        let spec = Spec::load(cfg.bundle.join("config.json"))
            .map_err(|e| failed(format!("the container's spec: {e}")))?;
        let mut spec = spec;
        spec.canonicalize_rootfs(&cfg.bundle)
            .map_err(|e| failed(format!("the container's root: {e}")))?;
        let guest = match spec::read(&spec).map_err(failed)? {
            spec::Container::Sandbox => None,
            spec::Container::Guest(g) => Some(prepare(&id, g, cfg).await.map_err(failed)?),
        };
        Ok(WasmInstance {
            id,
            is_guest: guest.is_some(),
            exit: Exit::new(),
            signal: Default::default(),
            interrupt: Interrupt::new(),
            stop: Default::default(),
            guest: Mutex::new(guest),
        })
    }

    async fn start(&self) -> Result<u32, ShimError> {
        let pid = std::process::id();
        let Some(guest) = self.guest.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            // The sandbox holds nothing: it ends when it is killed. (A
            // guest killed before it started has its exit already.)
            return Ok(pid);
        };
        let (exit, signal, stop) = (self.exit.clone(), self.signal.clone(), self.stop.clone());
        let mut opts = guest.opts;
        opts.interrupt = Some(self.interrupt.clone());
        std::thread::Builder::new()
            .name(format!("guest {}", self.id))
            .stack_size(GUEST_STACK)
            .spawn(move || {
                // Should the host side fail (a panic), the container still
                // exits, as a host error.
                let _exit_anyway = exit.set_guard_with(|| (125, Utc::now()));
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = exit.set((125, Utc::now()));
                        return log::error!("cannot start the guest's I/O runtime: {e}");
                    }
                };
                let result = rt.block_on(async {
                    tokio::select! {
                        r = guest.runtime.run_async(&guest.loaded, opts) => Some(r),
                        // Stopped while it waits in a host call: dropping
                        // the run ends it.
                        _ = stop.notified() => None,
                    }
                });
                rt.shutdown_background();
                let stopped = || 128 + signal.load(Ordering::SeqCst);
                let code = match result {
                    Some(Ok(outcome)) => outcome.exit_code as u32,
                    Some(Err(Error::Stopped)) | None => stopped(),
                    Some(Err(e)) => {
                        let message = format!("wasmlayer: error: {e}");
                        if let Some(mut f) = guest.stderr {
                            let _ = writeln!(f, "{message}");
                        }
                        if let Some(mut f) = guest.termination_log {
                            let _ = f.set_len(0).and_then(|()| f.write_all(message.as_bytes()));
                        }
                        e.exit_code() as u32
                    }
                };
                let _ = exit.set((code, Utc::now()));
            })
            .map_err(|e| failed(format!("cannot start the guest's thread: {e}")))?;
        Ok(pid)
    }

    async fn kill(&self, signal: u32) -> Result<(), ShimError> {
        // Signals whose default action is to do nothing (SIGCHLD, SIGCONT,
        // SIGURG, SIGWINCH), and 0, leave it running.
        if matches!(signal, 0 | 17 | 18 | 23 | 28) {
            return Ok(());
        }
        let _ = self
            .signal
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
        if !self.is_guest {
            // A pause container exits 0 on SIGTERM and SIGINT.
            let code = if matches!(signal, 2 | 15) {
                0
            } else {
                128 + signal
            };
            let _ = self.exit.set((code, Utc::now()));
            return Ok(());
        }
        let never_started = self.guest.lock().unwrap_or_else(|p| p.into_inner()).take();
        if never_started.is_some() {
            let _ = self.exit.set((128 + signal, Utc::now()));
            return Ok(());
        }
        // A running guest: it traps at its next epoch tick, or its run is
        // dropped where it waits; its thread reports the exit.
        self.interrupt.stop();
        self.stop.notify_one();
        Ok(())
    }

    async fn delete(&self) -> Result<(), ShimError> {
        Ok(())
    }

    async fn wait(&self) -> (u32, DateTime<Utc>) {
        *self.exit.wait().await
    }
}

/// The shim's runtime, made once per shim process (one per pod): the
/// engine `wasmlayer run` uses, the node's compile cache and the
/// configured admission policy.
fn runtime() -> Result<Arc<Runtime>, String> {
    static RUNTIME: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let config = config::get().map_err(|e| e.clone())?;
            crate::container_runtime(config)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// Everything a guest needs before it starts, checked now so that a
/// container that cannot run fails its creation with the reason.
async fn prepare(id: &str, g: spec::Guest, cfg: &InstanceConfig) -> Result<Prepared, String> {
    let began = std::time::Instant::now();
    let config = config::get().map_err(|e| e.clone())?;
    let runtime = runtime()?;
    let (name, bytes) = entrypoint(id, &g, cfg).await?;
    let loaded = runtime
        .load_bytes(&name, &bytes, LoadOptions::default())
        .map_err(|e| e.to_string())?;
    let cache = loaded.cache;
    let capabilities = Capabilities {
        dirs: g.dirs.clone(),
        env: g.env.clone(),
        args: g.args.iter().skip(1).cloned().collect(),
        ..Default::default()
    };
    let mut limits: Limits = config.limits.clone();
    if let Some(m) = g.memory_limit {
        limits.max_memory = Some(limits.max_memory.map_or(m, |c| c.min(m)));
    }
    let context = AdmissionContext {
        command: "shim".into(),
        route: None,
    };
    // Admitted here, for the reason to reach the container's status; the
    // run is admitted again, with the same request, when it starts.
    runtime
        .admit(&loaded, &capabilities, &limits, &context)
        .map_err(|e| e.to_string())?;
    let stdout = fifo(&cfg.stdout, true)?;
    let stderr = fifo(&cfg.stderr, true)?;
    let errors = stderr.as_ref().and_then(|f| f.try_clone().ok());
    let stream = |f: Option<File>| f.map_or(Stream::Null, Stream::File);
    let opts = RunOptions {
        capabilities,
        limits,
        program_name: g.args.first().cloned().unwrap_or_else(|| name.clone()),
        context,
        stdio: Stdio {
            stdin: stream(fifo(&cfg.stdin, false)?),
            stdout: stream(stdout),
            stderr: stream(stderr),
        },
        // Each guest's thread (and the threads it starts) is confined to
        // its grant; the shim's own threads go on serving containerd.
        host_sandbox: match config.host_sandbox {
            true => HostSandbox::Thread,
            false => HostSandbox::Off,
        },
        ..Default::default()
    };
    let termination_log = g.termination_log.as_ref().and_then(|path| {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| log::warn!("{id}: termination log {}: {e}", path.display()))
            .ok()
    });
    log::info!("{id}: {name}: {cache:?}, ready in {:?}", began.elapsed());
    Ok(Prepared {
        runtime,
        loaded,
        opts,
        stderr: errors,
        termination_log,
    })
}

/// The module or component the container runs: the file its args name in
/// its root, else its image's Wasm layer (a Wasm artifact).
async fn entrypoint(
    id: &str,
    g: &spec::Guest,
    cfg: &InstanceConfig,
) -> Result<(String, Vec<u8>), String> {
    let arg0 = g.args.first().map(String::as_str).unwrap_or_default();
    if !arg0.is_empty() {
        match spec::open_in_root(&g.root, arg0) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut bytes)
                    .map_err(|e| format!("{arg0}: {e}"))?;
                let text = Path::new(arg0).extension().is_some_and(|x| x == "wat");
                if !bytes.starts_with(b"\0asm") && !text {
                    return Err(format!(
                        "the image holds no Wasm: {arg0} is not a Wasm module or component"
                    ));
                }
                return Ok((arg0.to_string(), bytes));
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("{arg0}: {e}"));
            }
            Err(_) => {}
        }
    }
    let containerd = layers::Containerd::connect(&cfg.containerd_address, &cfg.namespace).await?;
    if let Some(image) = containerd.image_of(id).await? {
        if let Some((digest, bytes)) = layers::wasm_layer(&containerd, &image).await? {
            return Ok((digest, bytes));
        }
    }
    Err(if arg0.is_empty() {
        "the image holds no Wasm: no Wasm layer and no entrypoint".to_string()
    } else {
        format!("the image holds no Wasm: {arg0} does not exist in the container")
    })
}

/// Opens one of containerd's FIFOs for the guest's stdio; none for an
/// empty path. Opened read-write, which never blocks on a FIFO: containerd
/// reads the other end (stdin's writer may come later; it is opened
/// without blocking).
fn fifo(path: &Path, output: bool) -> Result<Option<File>, String> {
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let mut o = OpenOptions::new();
    if output {
        o.read(true).write(true);
    } else {
        use std::os::unix::fs::OpenOptionsExt;
        o.read(true).custom_flags(libc::O_NONBLOCK);
    }
    let f = o
        .open(path)
        .map_err(|e| format!("the container's stdio {}: {e}", path.display()))?;
    if !output {
        // Reads block again, as a guest expects.
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETFL on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(Some(f))
}
