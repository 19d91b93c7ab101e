//! The `wasmlayer` command line: argument parsing and printing only. All
//! behaviour lives in `wasmlayer-core`.

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
#[cfg(any(feature = "compiler", feature = "componentize", feature = "oci"))]
use wasmlayer_core::cache::write_file_atomic;
use wasmlayer_core::caps::parse_env_flag;
use wasmlayer_core::limits::{check_timeout, parse_duration, parse_size};
#[cfg(feature = "policy")]
mod policy;
#[cfg(feature = "webhook")]
mod webhook;

use wasmlayer_core::{
    Admission, AdmissionContext, Capabilities, DirGrant, EngineOptions, Error, HostSandbox, Invoke,
    Limits, LoadOptions, NetPattern, RunOptions, Runtime,
};

#[derive(Parser, Debug)]
#[command(
    name = "wasmlayer",
    version,
    about = "Run WebAssembly as a lightweight, capability-secured compute unit"
)]
struct Cli {
    /// Print what the host does (cache hits, compilation, admission) on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a WASI p1 module, a WASI p2 or p3 component or a precompiled artifact.
    Run(Box<RunArgs>),
    /// Compile ahead of time into a precompiled artifact (.cwasm).
    #[cfg(feature = "compiler")]
    Compile(CompileArgs),
    /// Show an artifact's kind, imports, exports and the capabilities it could use.
    Inspect(InspectArgs),
    /// Wrap a WASI p1 core module into a WASI p2 component (preview1 adapter).
    #[cfg(feature = "componentize")]
    Componentize(ComponentizeArgs),
    /// Serve a wasi:http component, or the routes of an app manifest (.toml).
    #[cfg(feature = "serve")]
    Serve(Box<ServeArgs>),
    /// Push and pull WebAssembly as OCI artifacts (CNCF Wasm artifact format).
    #[cfg(feature = "oci")]
    #[command(subcommand)]
    Oci(OciCommand),
    /// wasi-nn models: pack one into a self-contained module.
    #[cfg(feature = "nn")]
    #[command(subcommand)]
    Nn(NnCommand),
    /// Evaluate, test and build Rego policies; serve Kubernetes admission.
    #[cfg(feature = "policy")]
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

#[derive(Args, Debug, Default)]
struct CacheArgs {
    /// Compile cache directory [default: $XDG_CACHE_HOME/wasmlayer or ~/.cache/wasmlayer].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compile cache.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Grant a host directory read-write: HOST[::GUEST], or read-only with HOST::GUEST:ro.
    #[arg(long = "dir", value_name = "HOST[::GUEST[:ro]]")]
    dirs: Vec<String>,
    /// Grant a host directory read-only: HOST[::GUEST].
    #[arg(long = "dir-ro", value_name = "HOST[::GUEST]")]
    dirs_ro: Vec<String>,
    /// Set an environment variable (K=V), or pass one from the host (K).
    #[arg(long = "env", value_name = "K[=V]")]
    env: Vec<String>,
    /// Allow outbound connections to HOST:PORT (IP, [v6], CIDR, name or *; port, range or *).
    #[arg(long = "allow-net", value_name = "HOST:PORT")]
    allow_net: Vec<String>,
    /// Let a policy (Rego, .wasm or bundle; package `wasmlayer.admission`) allow, deny or narrow the grants.
    #[cfg(feature = "policy")]
    #[arg(long, value_name = "POLICY")]
    policy: Vec<PathBuf>,
    /// Grant the capabilities listed in a TOML file (merged with the flags).
    #[arg(long, value_name = "FILE.toml")]
    caps: Option<PathBuf>,
    #[cfg(feature = "nn")]
    #[command(flatten)]
    nn: NnArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Call this exported function of a core module instead of `_start`; ARGS are its arguments.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,
    /// Allow loading precompiled code (.cwasm). Only for files from a trusted source.
    #[arg(long)]
    allow_precompiled: bool,
    /// Do not confine this process around the guest (Landlock, seccomp).
    #[arg(long)]
    no_host_sandbox: bool,
    /// Run FILE from this local artifact store (offline): a name recorded
    /// by `compile --store` or `oci pull --store`, or a digest (sha256:HEX).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// An OCI reference's registry speaks plain HTTP (a registry on loopback).
    #[cfg(feature = "oci")]
    #[arg(long)]
    insecure: bool,
    #[command(flatten)]
    cache: CacheArgs,
    /// The artifact: .wasm (module or component), .wat, .cwasm with --allow-precompiled, or an OCI reference (REGISTRY/REPO:TAG, pulled once into the local store).
    file: PathBuf,
    /// Arguments passed to the guest.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// wasi-nn grants.
#[cfg(feature = "nn")]
#[derive(Args, Debug, Default)]
struct NnArgs {
    /// Let the guest load the ONNX model at PATH by name (wasi-nn load_by_name).
    #[arg(long = "nn-graph", value_name = "NAME=PATH")]
    nn_graphs: Vec<String>,
    /// Let the guest load the models in DIR by name (NAME.onnx or NAME/model.onnx).
    #[arg(long = "nn-dir", value_name = "DIR")]
    nn_dir: Option<PathBuf>,
    /// Where a `gpu` or `tpu` target cannot be served: `cpu` runs it on the CPU [default: an error].
    #[arg(long = "nn-fallback", value_name = "cpu")]
    nn_fallback: Option<String>,
}

#[cfg(feature = "nn")]
impl NnArgs {
    fn grant(&self, caps: &mut Capabilities) -> Result<(), Error> {
        for g in &self.nn_graphs {
            let (name, path) = g
                .split_once('=')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .ok_or_else(|| Error::usage(format!("--nn-graph {g}: expected NAME=PATH")))?;
            caps.nn_graphs.insert(name.to_string(), PathBuf::from(path));
        }
        if let Some(d) = &self.nn_dir {
            caps.nn_dir = Some(d.clone());
        }
        Ok(())
    }

    fn fallback(&self) -> Result<wasmlayer_nn::backend::Fallback, Error> {
        match self.nn_fallback.as_deref() {
            None => Ok(wasmlayer_nn::backend::Fallback::None),
            Some("cpu") => Ok(wasmlayer_nn::backend::Fallback::Cpu),
            Some(other) => Err(Error::usage(format!(
                "--nn-fallback {other}: the only fallback is `cpu`"
            ))),
        }
    }
}

/// Limits of a guest run (for `serve`: of each request).
#[derive(Args, Debug, Default)]
struct LimitArgs {
    /// Limit all linear memories and tables together, e.g. 64MiB.
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,
    /// Limit the guest to N units of fuel.
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Limit wall-clock time, e.g. 500ms, 2s.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
}

impl LimitArgs {
    #[cfg(feature = "serve")]
    fn given(&self) -> bool {
        self.max_memory.is_some() || self.fuel.is_some() || self.timeout.is_some()
    }

    fn to_limits(&self) -> Result<Limits, Error> {
        Ok(Limits {
            max_memory: self
                .max_memory
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(|e| Error::usage(format!("--max-memory: {e}")))?,
            fuel: self.fuel,
            timeout: self
                .timeout
                .as_deref()
                .map(|t| {
                    let d = parse_duration(t)?;
                    check_timeout(d)?;
                    Ok(d)
                })
                .transpose()
                .map_err(|e: String| Error::usage(format!("--timeout: {e}")))?,
        })
    }
}

#[cfg(feature = "compiler")]
#[derive(Args, Debug)]
struct CompileArgs {
    /// The module or component to compile (with --store, also a name or digest already stored).
    file: PathBuf,
    /// Where to write the precompiled artifact.
    #[arg(
        short,
        long,
        value_name = "OUT.cwasm",
        required_unless_present = "store"
    )]
    output: Option<PathBuf>,
    /// Put the module and its precompiled code into this artifact store, for `run --store` (an edge build runs it without compiling).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// With --store: record the artifact under this name too.
    #[arg(long, value_name = "NAME", requires = "store")]
    name: Option<String>,
    /// Compile with fuel metering (needed to run it with --fuel).
    #[arg(long)]
    fuel: bool,
    /// Compile -o's output for the edge build (without WASI 0.3); --store
    /// always writes the code for both.
    #[arg(long)]
    edge: bool,
}

#[cfg(feature = "serve")]
#[derive(Args, Debug)]
struct ServeArgs {
    /// A wasi:http proxy component, or an app manifest (wasmlayer.toml).
    target: PathBuf,
    /// Address to serve on [default: the manifest's server.listen, or 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Address for /metrics, /healthz and /readyz [default: the manifest's server.admin, or none].
    #[arg(long, value_name = "ADDR")]
    admin: Option<std::net::SocketAddr>,
    /// Instances alive at once; more concurrent requests get 503 [default: 1000].
    #[arg(long, value_name = "N")]
    pool_size: Option<u32>,
    /// Largest linear memory of one instance [default: 64MiB].
    #[arg(long, value_name = "SIZE")]
    max_instance_memory: Option<String>,
    /// Time a client has to send a request's headers; past it: 408 [default: 10s].
    #[arg(long, value_name = "DURATION")]
    header_timeout: Option<String>,
    /// Time a client has to send a request's body; past it: 408 [default: 30s].
    #[arg(long, value_name = "DURATION")]
    body_timeout: Option<String>,
    /// WASI 0.3 components: requests one instance serves before it is
    /// dropped (default 1: a fresh instance per request).
    #[arg(long, value_name = "N")]
    reuse: Option<u32>,
    /// WASI 0.3 components: requests one instance serves at once (default 1).
    #[arg(long, value_name = "N")]
    concurrent_reuse: Option<u32>,
    /// How long in-flight requests may take to finish on SIGTERM/SIGINT.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    drain_timeout: String,
    /// Grant a host directory: HOST[::GUEST[:ro]] (single component only).
    #[arg(long = "dir", value_name = "HOST[::GUEST[:ro]]")]
    dirs: Vec<String>,
    /// Set an environment variable (K=V), or pass one from the host (K).
    #[arg(long = "env", value_name = "K[=V]")]
    env: Vec<String>,
    /// Allow outbound HTTP to HOST[:PORT] (IP, CIDR, name or *; no port: any).
    #[arg(long = "allow-http", value_name = "HOST[:PORT]")]
    allow_http: Vec<String>,
    /// Per request (timeout default: 30s).
    #[command(flatten)]
    limits: LimitArgs,
    /// Largest request body accepted [default: 10MiB].
    #[arg(long, value_name = "SIZE")]
    max_body: Option<String>,
    #[command(flatten)]
    cache: CacheArgs,
    /// Do not confine this process (Landlock, seccomp) once the routes are loaded.
    #[arg(long)]
    no_host_sandbox: bool,
}

#[cfg(feature = "nn")]
#[derive(Subcommand, Debug)]
enum NnCommand {
    /// Embed an ONNX model and a pure-Rust inference engine (tract) in a WASI
    /// p1 module that runs on any WASI host: `model.wasm [--info] INPUT.npy... [-o OUTDIR]`.
    Pack {
        /// The ONNX model.
        model: PathBuf,
        /// Where to write the module.
        #[arg(short, long, value_name = "OUT.wasm")]
        output: PathBuf,
        /// Make a WASI p2 component instead, exporting the WIT world
        /// `wasmlayer:nn/packed-model` (`info`, `infer`) beside the command line.
        #[arg(long)]
        component: bool,
    },
    /// Print the WIT world that `nn pack --component` components export.
    Wit,
}

#[cfg(feature = "nn")]
fn nn(cmd: NnCommand) -> Result<i32, Error> {
    match cmd {
        NnCommand::Wit => {
            print!("{}", wasmlayer_nn::pack::WORLD_WIT);
            Ok(0)
        }
        NnCommand::Pack {
            model,
            output,
            component,
        } => {
            let bytes = std::fs::read(&model)
                .map_err(|e| Error::usage(format!("{}: {e}", model.display())))?;
            let packed = if component {
                wasmlayer_nn::pack::pack_component(&bytes)
            } else {
                wasmlayer_nn::pack::pack(&bytes)
            };
            let module = packed.map_err(|e| match e {
                Error::InvalidArtifact(m) => {
                    Error::InvalidArtifact(format!("{}: {m}", model.display()))
                }
                other => other,
            })?;
            write_file_atomic(&output, &module)?;
            eprintln!(
                "packed {} ({} bytes) into {} ({} bytes)",
                model.display(),
                bytes.len(),
                output.display(),
                module.len()
            );
            Ok(0)
        }
    }
}

#[cfg(feature = "oci")]
#[derive(Subcommand, Debug)]
enum OciCommand {
    /// Push a module or component as a Wasm artifact (credentials: the Docker config file).
    Push {
        /// The .wasm file.
        file: PathBuf,
        /// Where to: REGISTRY/REPOSITORY:TAG.
        reference: String,
        /// The registry speaks plain HTTP (a registry on loopback).
        #[arg(long)]
        insecure: bool,
    },
    /// Pull a Wasm artifact into the local store (checked against its digests); -o also writes it to a file.
    Pull {
        /// REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST.
        reference: String,
        /// Also write the module or component here.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The registry speaks plain HTTP (a registry on loopback).
        #[arg(long)]
        insecure: bool,
        /// Pull into this artifact store instead of the default one, and
        /// precompile it there, for `run --store` (an edge build runs it without compiling).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
    },
}

#[cfg(feature = "oci")]
fn oci(cmd: OciCommand) -> Result<i32, Error> {
    match cmd {
        OciCommand::Push {
            file,
            reference,
            insecure,
        } => {
            let bytes = wasmlayer_core::runtime::read_artifact(&file)?;
            let pushed =
                wasmlayer_oci::push(&bytes, &reference, wasmlayer_oci::Options { insecure })?;
            eprintln!(
                "pushed {} ({} bytes) to {reference}",
                file.display(),
                bytes.len()
            );
            println!("{}", pushed.digest);
        }
        OciCommand::Pull {
            reference,
            output,
            insecure,
            store: store_dir,
        } => {
            let store = match &store_dir {
                Some(dir) => wasmlayer_oci::Store::open(dir.clone()),
                None => wasmlayer_oci::Store::default_location()?,
            };
            let pulled =
                wasmlayer_oci::pull(&reference, &store, wasmlayer_oci::Options { insecure })?;
            #[cfg(feature = "compiler")]
            if store_dir.is_some() {
                for code in precompile_into(&store, &pulled.path, &pulled.layer, false)? {
                    eprintln!("precompiled into {}", code.display());
                }
            }
            if let Some(out) = &output {
                let bytes = store.blob(&pulled.layer).ok_or_else(|| {
                    Error::host(format!(
                        "{}: stored layer unreadable",
                        pulled.path.display()
                    ))
                })?;
                write_file_atomic(out, &bytes)?;
            }
            eprintln!(
                "pulled {reference} ({} bytes, layer {}) into {}",
                pulled.size,
                pulled.layer,
                pulled.path.display()
            );
            println!("{}", pulled.manifest);
        }
    }
    Ok(0)
}

#[cfg(feature = "componentize")]
#[derive(Args, Debug)]
struct ComponentizeArgs {
    /// The WASI p1 core module (.wasm or .wat).
    file: PathBuf,
    /// Where to write the component.
    #[arg(short, long, value_name = "COMPONENT.wasm")]
    output: PathBuf,
    /// Where the adapter keeps its state: `reserved` moves the module up and
    /// gives the adapter the bottom of memory (works for Go and any runtime that
    /// owns all memory); `grow` lets the adapter grow memory for itself.
    #[arg(long, value_name = "reserved|grow", default_value = "reserved")]
    adapter_memory: wasmlayer_componentize::AdapterMemory,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// The artifact to inspect.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Allow inspecting precompiled code (.cwasm), which must be loaded to be read.
    #[arg(long)]
    allow_precompiled: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Parses `args`, runs the command and returns the process exit code.
/// `admission` decides what `run` may grant. As in the binary, `run` and
/// `serve` confine the calling process (the host sandbox) unless
/// `--no-host-sandbox` is among `args`: an embedder that goes on to do
/// other work afterwards passes it.
pub fn main_with<I, T>(args: I, admission: Arc<dyn Admission>) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                wasmlayer_core::ErrorKind::Usage.exit_code()
            } else {
                0
            };
        }
    };
    init_logging(cli.verbose);
    let (code, guest_left_running) = match dispatch(cli.command, admission) {
        Ok(code) => (code, false),
        Err(e) => {
            eprint!("{}", render_error(&e));
            (
                e.exit_code(),
                e.kind() == wasmlayer_core::ErrorKind::Timeout,
            )
        }
    };
    // After a timeout the guest's thread may still be blocked in a write to
    // stdout, holding its lock: flushing would wait for whoever reads the
    // other end. Nothing of ours is waiting in the buffer then (WASI's
    // writes flush as they go, and a failed run prints to stderr only).
    if !guest_left_running {
        let _ = std::io::stdout().flush();
    }
    let _ = std::io::stderr().flush();
    code
}

/// The message printed for an error: one line naming what happened, then
/// the guest backtrace for traps.
pub fn render_error(e: &Error) -> String {
    let mut out = String::new();
    match e {
        Error::Denied { reasons } if reasons.len() > 1 => {
            out.push_str("error: admission denied:\n");
            for r in reasons {
                out.push_str(&format!("  - {r}\n"));
            }
        }
        _ => out.push_str(&format!("error: {e}\n")),
    }
    let bt = e.backtrace();
    if !bt.is_empty() {
        out.push_str("wasm backtrace:\n");
        let mut i = 0;
        while i < bt.len() {
            out.push_str(&format!("  {i:>3}: {}\n", bt[i]));
            // Deep recursion: show a run of identical frames once.
            let same = bt[i + 1..]
                .iter()
                .take_while(|f| {
                    f.func_index == bt[i].func_index
                        && f.module == bt[i].module
                        && f.offset == bt[i].offset
                })
                .count();
            if same > 0 {
                out.push_str(&format!(
                    "       ... the frame above repeated {same} more time(s)\n"
                ));
            }
            i += same + 1;
        }
    }
    out
}

fn init_logging(verbose: bool) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = if verbose {
        LevelFilter::DEBUG
    } else {
        LevelFilter::WARN
    };
    // wasmtime-wasi-nn logs every error it hands a component guest at ERROR
    // level, though the guest gets it and our backend warns with the cause:
    // its lines only with -v.
    let filter = Targets::new().with_default(level).with_target(
        "wasmtime_wasi_nn",
        if verbose {
            LevelFilter::DEBUG
        } else {
            LevelFilter::OFF
        },
    );
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(
            cfg!(feature = "rich-cli") && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        );
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
}

fn runtime(cache: &CacheArgs, fuel: bool, admission: Arc<dyn Admission>) -> Result<Runtime, Error> {
    runtime_with(cache, fuel, admission, |b| b)
}

/// [`runtime`], with `more` applied to the builder (extensions).
fn runtime_with(
    cache: &CacheArgs,
    fuel: bool,
    admission: Arc<dyn Admission>,
    more: impl FnOnce(wasmlayer_core::RuntimeBuilder) -> wasmlayer_core::RuntimeBuilder,
) -> Result<Runtime, Error> {
    more(
        Runtime::builder()
            .engine_options(EngineOptions {
                fuel,
                ..Default::default()
            })
            .cache(!cache.no_cache)
            .cache_dir(cache.cache_dir.clone())
            .admission(admission),
    )
    .build()
}

fn dispatch(command: Command, admission: Arc<dyn Admission>) -> Result<i32, Error> {
    match command {
        Command::Run(args) => run(*args, admission),
        #[cfg(feature = "compiler")]
        Command::Compile(args) => compile(args),
        Command::Inspect(args) => inspect(args),
        #[cfg(feature = "componentize")]
        Command::Componentize(args) => componentize(args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve(*args, admission),
        #[cfg(feature = "policy")]
        Command::Policy(cmd) => policy::dispatch(cmd),
        #[cfg(feature = "oci")]
        Command::Oci(cmd) => oci(cmd),
        #[cfg(feature = "nn")]
        Command::Nn(cmd) => nn(cmd),
    }
}

/// Builds the requested capabilities from the flags and the `--caps` file.
fn capabilities(args: &RunArgs) -> Result<Capabilities, Error> {
    let mut caps = match &args.caps {
        Some(path) => Capabilities::from_toml_file(path)?,
        None => Capabilities::default(),
    };
    let mut flags = Capabilities::default();
    for d in &args.dirs {
        flags.dirs.push(DirGrant::parse(d, false)?);
    }
    for d in &args.dirs_ro {
        flags.dirs.push(DirGrant::parse(d, true)?);
    }
    for e in &args.env {
        parse_env_flag(&mut flags, e)?;
    }
    for n in &args.allow_net {
        flags
            .allow_net
            .push(n.parse::<NetPattern>().map_err(Error::usage)?);
    }
    if args.invoke.is_none() {
        flags.args = args.args.clone();
    }
    #[cfg(feature = "nn")]
    args.nn.grant(&mut flags)?;
    caps.merge(flags);
    Ok(caps)
}

fn run(args: RunArgs, admission: Arc<dyn Admission>) -> Result<i32, Error> {
    let caps = capabilities(&args)?;
    // The embedder's admission, then the policy: both must allow.
    #[cfg(feature = "policy")]
    let admission = match args.policy.is_empty() {
        true => admission,
        false => wasmlayer_core::AllOf::compose(admission, Some(load_policy(&args.policy)?)),
    };
    let limits = args.limits.to_limits()?;
    #[cfg(feature = "nn")]
    let nn = wasmlayer_nn::WasiNn::new(args.nn.fallback()?);
    let rt = runtime_with(&args.cache, args.limits.fuel.is_some(), admission, |b| {
        #[cfg(feature = "nn")]
        let b = b.extension(nn.clone());
        b
    })?;
    let rt = Arc::new(rt);
    let loaded = {
        let (rt, file, store) = (rt.clone(), args.file.clone(), args.store.clone());
        let fuel = args.limits.fuel.is_some();
        let load = LoadOptions {
            allow_precompiled: args.allow_precompiled,
        };
        #[cfg(feature = "oci")]
        let insecure = args.insecure;
        within(limits.timeout, move || {
            if let Some(dir) = &store {
                return load_from_store(&rt, dir, &file, fuel);
            }
            #[cfg(feature = "oci")]
            {
                let text = file.to_string_lossy();
                if wasmlayer_oci::looks_like_reference(&text) {
                    let store = wasmlayer_oci::Store::default_location()?;
                    let pulled =
                        wasmlayer_oci::resolve(&text, &store, wasmlayer_oci::Options { insecure })?;
                    // The stored layer, loaded like a file: the compile
                    // cache knows it by its identity from the second run on.
                    let mut loaded = rt.load(&pulled.path, LoadOptions::default())?;
                    loaded.path = PathBuf::from(text.as_ref());
                    return Ok(loaded);
                }
            }
            rt.load(&file, load)
        })?
    };
    tracing::debug!(kind = %loaded.facts.kind, cache = ?loaded.cache, "loaded");
    let program_name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let outcome = rt.run(
        &loaded,
        RunOptions {
            capabilities: caps,
            limits,
            invoke: args.invoke.map(|name| Invoke {
                name,
                args: args.args,
            }),
            program_name,
            context: AdmissionContext {
                command: "run".into(),
                ..Default::default()
            },
            host_sandbox: match args.no_host_sandbox {
                true => HostSandbox::Off,
                false => HostSandbox::Process,
            },
            ..Default::default()
        },
    )?;
    if !outcome.results.is_empty() {
        let mut out = std::io::stdout().lock();
        for r in &outcome.results {
            let _ = writeln!(out, "{r}");
        }
    }
    if let Some(f) = outcome.fuel_consumed {
        tracing::info!(fuel_consumed = f, "fuel");
    }
    #[cfg(feature = "nn")]
    {
        let m = nn.meter().read();
        if m.models > 0 {
            tracing::info!(
                inferences = m.inferences,
                inference_ms = m.inference_time.as_secs_f64() * 1e3,
                models = m.models,
                model_bytes = m.model_bytes,
                load_ms = m.load_time.as_secs_f64() * 1e3,
                "wasi-nn"
            );
        }
    }
    tracing::info!(
        peak_memory = outcome.peak_memory,
        exit_code = outcome.exit_code,
        "guest finished"
    );
    Ok(outcome.exit_code)
}

/// Loads `name` from the artifact store in `dir`, offline: its precompiled
/// code when the store has it (the store is trusted like the compile
/// cache: only `compile --store` and `oci pull --store` write it), else the
/// module itself, which needs a compiler.
fn load_from_store(
    rt: &Runtime,
    dir: &std::path::Path,
    name: &std::path::Path,
    fuel: bool,
) -> Result<wasmlayer_core::Loaded, Error> {
    let store = wasmlayer_core::store::Store::open(dir.to_path_buf());
    // The precompiled code carries its own integrity check: the module's
    // blob is read (and checked against its digest) only to compile it.
    let named = store.resolve_name(&name.to_string_lossy())?;
    let code = store
        .precompiled_path(&named.layer, fuel, cfg!(not(feature = "p3")))
        .filter(|p| p.is_file());
    let mut loaded = match code {
        // Admission judges the module, not its compiled form.
        Some(code) => rt.load_precompiled_for(
            &code,
            named.layer.strip_prefix("sha256:").unwrap_or(&named.layer),
            named.size,
        )?,
        None if cfg!(feature = "compiler") => {
            let record = store.resolve(&name.to_string_lossy())?;
            rt.load(&record.path, LoadOptions::default())?
        }
        None => {
            return Err(Error::usage(format!(
                "{}: the store {} has no precompiled code for it{}; add it with a full build: `wasmlayer compile --store {}{} {}`",
                name.display(),
                dir.display(),
                if fuel { " instrumented for fuel" } else { "" },
                dir.display(),
                if fuel { " --fuel" } else { "" },
                named.layer
            )))
        }
    };
    loaded.path = name.to_path_buf();
    Ok(loaded)
}

#[cfg(feature = "compiler")]
fn compile(args: CompileArgs) -> Result<i32, Error> {
    if let Some(dir) = &args.store {
        let store = wasmlayer_core::store::Store::open(dir.clone());
        // A file, or what the store already holds under that name.
        let bytes = match std::fs::metadata(&args.file) {
            Ok(_) => wasm_binary(&args.file)?,
            Err(_) => {
                let record = store.resolve(&args.file.to_string_lossy())?;
                std::fs::read(&record.path).map_err(|e| Error::io(&record.path, e))?
            }
        };
        let digest = store.put_blob(&bytes)?;
        let blob = store.blob_path(&digest).expect("a computed digest");
        if let Some(name) = &args.name {
            store.record(
                wasmlayer_core::store::Record {
                    reference: name.clone(),
                    manifest: String::new(),
                    layer: digest.clone(),
                    size: bytes.len() as u64,
                    path: PathBuf::new(),
                },
                &bytes,
            )?;
        }
        for code in precompile_into(&store, &blob, &digest, args.fuel)? {
            eprintln!(
                "compiled {} into the store {} ({})",
                args.file.display(),
                dir.display(),
                code.display()
            );
        }
        println!("{digest}");
    }
    if let Some(output) = &args.output {
        let (loaded, code) = precompile(&args.file, args.fuel, args.edge)?;
        write_file_atomic(output, &code)?;
        eprintln!(
            "compiled {} ({}) to {} ({} bytes)",
            args.file.display(),
            loaded.facts.kind,
            output.display(),
            code.len()
        );
    }
    Ok(0)
}

/// Runs `load` (reading, pulling and, on a cache miss, compiling a guest)
/// within the run's `timeout` (and [`wasmlayer_core::run::TIMEOUT_GRACE`]),
/// so that a module built to take long to compile cannot hold the process
/// past it: the run ends as a timeout (124) and the load is left behind on
/// its thread. The guest then has its whole timeout.
fn within<T: Send + 'static>(
    timeout: Option<std::time::Duration>,
    load: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    use wasmlayer_core::run::{on_thread_within, TIMEOUT_GRACE};
    let Some(timeout) = timeout else {
        return load();
    };
    on_thread_within("load", None, timeout + TIMEOUT_GRACE, load)?
        .unwrap_or(Err(Error::CompileTimeout(timeout)))
}

/// Compiles `file` for `compile` (no compile cache), with fuel metering as
/// asked and, for the edge build, without WASI 0.3: what was loaded, and
/// its precompiled code.
#[cfg(feature = "compiler")]
fn precompile(
    file: &std::path::Path,
    fuel: bool,
    without_p3: bool,
) -> Result<(wasmlayer_core::Loaded, Vec<u8>), Error> {
    let rt = Runtime::builder()
        .engine_options(EngineOptions {
            fuel,
            without_p3,
            ..Default::default()
        })
        .cache(false)
        .admission(Arc::new(wasmlayer_core::GrantRequested))
        .build()?;
    let loaded = rt.load(file, LoadOptions::default())?;
    let code = rt.to_precompiled(&loaded.compiled)?;
    Ok((loaded, code))
}

/// The binary WebAssembly of a file (text is converted): what a store
/// keeps, by its digest.
#[cfg(feature = "compiler")]
fn wasm_binary(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    let bytes = wasmlayer_core::runtime::read_artifact(path)?;
    match wasmlayer_core::artifact::detect(&bytes) {
        Ok((wasmlayer_core::Format::Wat, _)) => wat::parse_bytes(&bytes)
            .map(|b| b.into_owned())
            .map_err(|e| Error::invalid(format!("{}: {e}", path.display()))),
        Ok((wasmlayer_core::Format::Precompiled, _)) => Err(Error::usage(format!(
            "{}: is precompiled code already; the store keeps modules and components and compiles them itself",
            path.display()
        ))),
        Ok(_) => Ok(bytes),
        Err(e) => Err(Error::invalid(format!("{}: {e}", path.display()))),
    }
}

/// Compiles the stored blob `digest` (at `blob`) and stores its code, for
/// this build and for the edge build (without WASI 0.3).
#[cfg(feature = "compiler")]
fn precompile_into(
    store: &wasmlayer_core::store::Store,
    blob: &std::path::Path,
    digest: &str,
    fuel: bool,
) -> Result<Vec<PathBuf>, Error> {
    // A build without WASI 0.3 makes only code like its own.
    let variants: &[bool] = if cfg!(feature = "p3") {
        &[false, true]
    } else {
        &[true]
    };
    let mut written = Vec::new();
    for &edge in variants {
        let (_, code) = precompile(blob, fuel, edge)?;
        written.push(store.put_precompiled(digest, fuel, edge, &code)?);
    }
    Ok(written)
}

#[cfg(feature = "serve")]
fn serve(args: ServeArgs, admission: Arc<dyn Admission>) -> Result<i32, Error> {
    use wasmlayer_http::{Manifest, RouteSpec, ServerSettings, Source};
    let usage = |flag: &str, e: String| Error::usage(format!("{flag}: {e}"));
    let is_manifest = args.target.extension().is_some_and(|e| e == "toml");
    let route_flags = !args.dirs.is_empty()
        || !args.env.is_empty()
        || !args.allow_http.is_empty()
        || args.limits.given()
        || args.max_body.is_some()
        || args.reuse.is_some()
        || args.concurrent_reuse.is_some();
    let source = if is_manifest {
        if route_flags
            || args.pool_size.is_some()
            || args.max_instance_memory.is_some()
            || args.header_timeout.is_some()
            || args.body_timeout.is_some()
        {
            return Err(Error::usage(
                "capability, limit, pool and deadline flags apply to a single component; with a manifest, set them in the manifest",
            ));
        }
        Source::Manifest(args.target.clone())
    } else {
        let mut route = RouteSpec::new("/", args.target.clone());
        for d in &args.dirs {
            route.caps.dirs.push(DirGrant::parse(d, false)?);
        }
        route.caps.resolve_dirs()?;
        for e in &args.env {
            parse_env_flag(&mut route.caps, e)?;
        }
        for a in &args.allow_http {
            route
                .caps
                .allow_http
                .push(NetPattern::parse_http(a).map_err(|e| usage("--allow-http", e))?);
        }
        let limits = args.limits.to_limits()?;
        route.limits.max_memory = limits.max_memory;
        route.limits.fuel = limits.fuel;
        route.limits.timeout = limits.timeout.or(route.limits.timeout);
        if let Some(b) = &args.max_body {
            route.max_body = parse_size(b).map_err(|e| usage("--max-body", e))?;
        }
        route.reuse = wasmlayer_http::manifest::check_reuse("/", "--reuse", args.reuse)
            .map_err(Error::usage)?;
        route.concurrent_reuse =
            wasmlayer_http::manifest::check_reuse("/", "--concurrent-reuse", args.concurrent_reuse)
                .map_err(Error::usage)?;
        let mut server = ServerSettings::default();
        if let Some(n) = args.pool_size {
            if n == 0 {
                return Err(Error::usage("--pool-size must be at least 1"));
            }
            server.pool_size = n;
        }
        if let Some(m) = &args.max_instance_memory {
            server.max_instance_memory =
                parse_size(m).map_err(|e| usage("--max-instance-memory", e))?;
        }
        if let Some(t) = &args.header_timeout {
            server.header_timeout = wasmlayer_http::manifest::parse_timeout("--header-timeout", t)
                .map_err(Error::usage)?;
        }
        if let Some(t) = &args.body_timeout {
            server.body_timeout = wasmlayer_http::manifest::parse_timeout("--body-timeout", t)
                .map_err(Error::usage)?;
        }
        if route
            .limits
            .max_memory
            .is_some_and(|m| m > server.max_instance_memory)
        {
            return Err(Error::usage("--max-memory is above --max-instance-memory"));
        }
        Source::Single(Box::new(Manifest::single(route, server)))
    };
    wasmlayer_http::serve(wasmlayer_http::ServeOptions {
        admission,
        #[cfg(feature = "policy")]
        policy: Some(Arc::new(|paths: &[std::path::PathBuf]| load_policy(paths))),
        #[cfg(not(feature = "policy"))]
        policy: None,
        source,
        listen: args.listen,
        admin: args.admin,
        drain_timeout: parse_duration(&args.drain_timeout)
            .map_err(|e| usage("--drain-timeout", e))?,
        watch_interval: std::time::Duration::from_millis(500),
        cache_dir: args.cache.cache_dir.clone(),
        cache: !args.cache.no_cache,
        host_sandbox: !args.no_host_sandbox,
    })
}

/// A capability policy (package `wasmlayer.admission`) as an admission.
#[cfg(feature = "policy")]
fn load_policy(paths: &[std::path::PathBuf]) -> Result<Arc<dyn Admission>, Error> {
    Ok(Arc::new(
        wasmlayer_policy::admission::PolicyAdmission::load(paths)?,
    ))
}

#[cfg(feature = "componentize")]
fn componentize(args: ComponentizeArgs) -> Result<i32, Error> {
    let bytes = wasmlayer_core::runtime::read_artifact(&args.file)?;
    let out = wasmlayer_componentize::componentize(&bytes, args.adapter_memory)?;
    write_file_atomic(&args.output, &out.component)?;
    eprintln!(
        "componentized {} ({} bytes) to {} ({} bytes, {} adapter, adapter memory: {})",
        args.file.display(),
        bytes.len(),
        args.output.display(),
        out.component.len(),
        out.adapter.as_str(),
        out.memory.as_str()
    );
    Ok(0)
}

fn inspect(args: InspectArgs) -> Result<i32, Error> {
    let rt = runtime(&args.cache, false, Arc::new(wasmlayer_core::GrantRequested))?;
    let loaded = rt.load(
        &args.file,
        LoadOptions {
            allow_precompiled: args.allow_precompiled,
        },
    )?;
    let report = wasmlayer_core::inspect::inspect(&loaded);
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).expect("inspection serialises")
        );
        return Ok(0);
    }
    let _ = writeln!(out, "file:         {}", report.path);
    let _ = writeln!(
        out,
        "kind:         {} ({}, WASI {})",
        report.kind,
        match report.kind {
            wasmlayer_core::ArtifactKind::Module => "core module",
            wasmlayer_core::ArtifactKind::Component => "component",
        },
        report.wasi
    );
    let _ = writeln!(
        out,
        "format:       {}",
        match report.format {
            wasmlayer_core::Format::Wasm => "binary WebAssembly",
            wasmlayer_core::Format::Wat => "WebAssembly text",
            wasmlayer_core::Format::Precompiled => "precompiled (.cwasm)",
        }
    );
    let _ = writeln!(out, "size:         {} bytes", report.size);
    let _ = writeln!(out, "sha256:       {}", report.sha256);
    let _ = writeln!(
        out,
        "capabilities: {}",
        if report.capabilities.is_empty() {
            "none".to_string()
        } else {
            report.capabilities.join(", ")
        }
    );
    for (title, items) in [("imports", &report.imports), ("exports", &report.exports)] {
        let _ = writeln!(out, "{title} ({}):", items.len());
        for i in items.iter() {
            let _ = writeln!(out, "  {}: {}", i.name, i.ty);
            for sub in &i.items {
                let _ = writeln!(out, "      {sub}");
            }
        }
    }
    Ok(0)
}
