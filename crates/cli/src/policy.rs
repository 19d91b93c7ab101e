//! `wasmlayer policy ...`: evaluate, test, build and serve Rego policies.

use clap::{Args, Subcommand};
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use wasmlayer_core::Error;
use wasmlayer_policy::native::TestStatus;
use wasmlayer_policy::{Input, NativePolicy, Policy, Sources};

#[derive(Subcommand, Debug)]
pub(crate) enum PolicyCommand {
    /// Evaluate a policy (.rego files, a .wasm module or an OPA bundle .tar.gz) and print the result set as JSON.
    Eval(EvalArgs),
    /// Run the `test_*` rules of the Rego files in the given files or directories.
    Test(TestArgs),
    /// Compile Rego (and data.json) into a Wasm module with OPA's Wasm ABI.
    Build(BuildArgs),
    /// Measure evaluation latency: evaluate the same input many times, print p50/p99.
    Bench(BenchArgs),
    /// Serve Kubernetes validating admission (AdmissionReview v1) over HTTPS.
    #[cfg(feature = "webhook")]
    Webhook(crate::webhook::WebhookArgs),
}

/// Which Rego the `.rego` files are written in.
#[derive(Args, Debug, Clone, Copy)]
pub(crate) struct RegoSyntax {
    /// Parse Rego as v0, the syntax before OPA 1.0 (`p[x] { ... }`, no `if` or `contains`; Gatekeeper's templates), as OPA's `--v0-compatible` does; a module that imports `rego.v1` stays v1.
    #[arg(long = "v0-compatible")]
    pub(crate) v0_compatible: bool,
}

impl RegoSyntax {
    /// The policy in `paths`, read with `data` merged in, in this syntax.
    pub(crate) fn read(
        self,
        paths: &[PathBuf],
        data: Option<Json>,
    ) -> Result<wasmlayer_policy::PolicySource, Error> {
        Ok(wasmlayer_policy::PolicySource::read(paths, data)?.with_rego_v0(self.v0_compatible))
    }
}

/// What to evaluate: the policy, its input and data, and the entrypoint.
#[derive(Args, Debug)]
pub(crate) struct Evaluation {
    /// The policy: .rego files and directories (with .json data), or one .wasm / .tar.gz.
    #[arg(required = true, value_name = "POLICY")]
    policy: Vec<PathBuf>,
    /// The input document: a JSON (or YAML) file, or - for standard input. Without it, input is undefined.
    #[arg(short, long, value_name = "FILE|-")]
    input: Option<PathBuf>,
    /// A data document (JSON) merged into `data`.
    #[arg(short, long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// What to evaluate: `data.pkg.rule`, `pkg/rule` [default: the policy's only package or entrypoint].
    #[arg(short, long, value_name = "PATH")]
    entrypoint: Option<String>,
    #[command(flatten)]
    syntax: RegoSyntax,
}

impl Evaluation {
    /// The loaded policy and the input.
    fn load(&self) -> Result<(Policy, Option<Json>), Error> {
        let input = self
            .input
            .as_deref()
            .map(|p| read_document(p, "input"))
            .transpose()?;
        let data = self
            .data
            .as_deref()
            .map(|p| read_document(p, "data"))
            .transpose()?;
        let source = self.syntax.read(&self.policy, data)?;
        Ok((Policy::from_source(&source)?, input))
    }
}

#[derive(Args, Debug)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    what: Evaluation,
    /// Exit 1 when the result is undefined.
    #[arg(long)]
    fail: bool,
    /// Print the result set on one line.
    #[arg(long)]
    compact: bool,
}

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    what: Evaluation,
    /// Timed evaluations (after as many untimed ones, at most 1,000). The
    /// input is read and serialised once: each evaluation is given the same
    /// JSON text (a Wasm policy) or value (Rego source).
    #[arg(short = 'n', long, default_value_t = 10_000)]
    count: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct TestArgs {
    /// Rego files or directories holding policies and their tests.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Show every test, passing ones too, with its time.
    #[arg(long = "show-all")]
    show_all: bool,
    #[command(flatten)]
    syntax: RegoSyntax,
}

#[derive(Args, Debug)]
pub(crate) struct BuildArgs {
    /// .rego files, .json data files, or directories of them.
    #[arg(required = true, value_name = "POLICY")]
    policy: Vec<PathBuf>,
    /// Where to write the module.
    #[arg(short, long, value_name = "policy.wasm")]
    output: PathBuf,
    /// A rule to export as an entrypoint (`pkg/rule` or `data.pkg.rule`); repeatable [default: every rule].
    #[arg(short, long = "entrypoint", value_name = "PATH")]
    entrypoints: Vec<String>,
    /// Build a module that interprets the policy (regorus inside the module)
    /// instead of compiling it to Wasm code: larger and slower, for policies
    /// that use what the compiler does not support.
    #[arg(long)]
    interpreter: bool,
    #[command(flatten)]
    syntax: RegoSyntax,
}

pub(crate) fn dispatch(cmd: PolicyCommand) -> Result<i32, Error> {
    match cmd {
        PolicyCommand::Eval(a) => eval(a),
        PolicyCommand::Test(a) => test(a),
        PolicyCommand::Build(a) => build(a),
        PolicyCommand::Bench(a) => bench(a),
        #[cfg(feature = "webhook")]
        PolicyCommand::Webhook(a) => crate::webhook::run(a),
    }
}

/// Reads a JSON (or YAML) document from a file or `-`.
pub(crate) fn read_document(path: &Path, what: &str) -> Result<Json, Error> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::usage(format!("{what}: cannot read standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?
    };
    let name = if path == Path::new("-") {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    match serde_json::from_str::<Json>(&text) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if yaml {
                wasmlayer_policy::yaml_to_json(&text)
                    .map_err(|e| Error::usage(format!("{what} {name}: not valid YAML: {e}")))
            } else {
                Err(Error::usage(format!(
                    "{what} {name}: not valid JSON: {json_err}"
                )))
            }
        }
    }
}

/// An evaluation past its memory or time limit: the error in a policy's
/// words, and the limit's exit code (137, 124).
fn past_limit(e: Error) -> Result<i32, Error> {
    match e {
        Error::MemoryLimit(_) | Error::Timeout(_) => {
            eprintln!("error: {}", wasmlayer_policy::native::describe(&e));
            Ok(e.exit_code())
        }
        other => Err(other),
    }
}

fn eval(args: EvalArgs) -> Result<i32, Error> {
    let (mut policy, input) = args.what.load()?;
    // On a worker, so that an evaluation past the memory limit is reported
    // like any error.
    let result = match policy.eval_isolated(args.what.entrypoint.as_deref(), input.as_ref()) {
        Ok(r) => r,
        Err(e) => return past_limit(e),
    };
    for p in policy.prints() {
        eprintln!("{p}");
    }
    let text = if args.compact {
        serde_json::to_string(&result)
    } else {
        serde_json::to_string_pretty(&result)
    }
    .expect("JSON values serialise");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let undefined = result.as_array().is_some_and(|a| a.is_empty());
    Ok(if args.fail && undefined { 1 } else { 0 })
}

fn test(args: TestArgs) -> Result<i32, Error> {
    let mut sources = Sources::read(&args.paths)?;
    sources.rego_v0 = args.syntax.v0_compatible;
    let policy = NativePolicy::new(&sources)?;
    let outcomes = policy.run_tests();
    let mut out = std::io::stdout().lock();
    if outcomes.is_empty() {
        let _ = writeln!(out, "no tests found (rules named test_*)");
        return Ok(1);
    }
    let (mut pass, mut fail, mut error) = (0, 0, 0);
    for o in &outcomes {
        let (label, detail) = match &o.status {
            TestStatus::Pass => {
                pass += 1;
                ("PASS", String::new())
            }
            TestStatus::Fail(v) => {
                fail += 1;
                ("FAIL", format!(" (got {v})"))
            }
            TestStatus::Error(e) => {
                error += 1;
                ("ERROR", format!("\n  {}", e.trim().replace('\n', "\n  ")))
            }
        };
        if args.show_all || o.status != TestStatus::Pass {
            let _ = writeln!(out, "{}: {label} ({:.3?}){detail}", o.name, o.elapsed);
            for p in &o.prints {
                let _ = writeln!(out, "  print: {p}");
            }
        }
    }
    let _ = writeln!(out, "{}", "-".repeat(60));
    let total = outcomes.len();
    let _ = writeln!(out, "PASS: {pass}/{total}");
    if fail > 0 {
        let _ = writeln!(out, "FAIL: {fail}/{total}");
    }
    if error > 0 {
        let _ = writeln!(out, "ERROR: {error}/{total}");
    }
    Ok(if fail + error > 0 { 1 } else { 0 })
}

fn build(args: BuildArgs) -> Result<i32, Error> {
    let sources = Sources::read(&args.policy)?;
    let input = wasmlayer_policy::wasm_build::BuildInput {
        modules: sources.modules,
        data: sources.data,
        entrypoints: args.entrypoints,
        interpreter: args.interpreter,
        rego_v0: args.syntax.v0_compatible,
    };
    let module = wasmlayer_policy::wasm_build::build_module(&input)?;
    crate::write_file_atomic(&args.output, &module)?;
    eprintln!("built {} ({} bytes)", args.output.display(), module.len());
    Ok(0)
}

fn bench(args: BenchArgs) -> Result<i32, Error> {
    if args.count == 0 {
        return Err(Error::usage("--count must be at least 1"));
    }
    let load_start = std::time::Instant::now();
    let (mut policy, input) = args.what.load()?;
    let load = load_start.elapsed();
    let ep = args.what.entrypoint.as_deref();
    // The input is made once, as the webhook makes it once per review: a
    // Wasm policy is given its JSON text, Rego source its value.
    let input = input.map(Input::new);
    // Every evaluation on this thread, as an embedder would evaluate: no
    // worker thread, whose mere existence makes the C allocator lock (and
    // every evaluation slower). Past the memory limit, the process exits 137.
    let result = match policy.eval_input(ep, input.as_ref()) {
        Ok(r) => r,
        Err(e) => return past_limit(e),
    };
    for _ in 0..args.count.min(1000) {
        policy.eval_input(ep, input.as_ref())?;
    }
    let mut ns: Vec<u64> = Vec::with_capacity(args.count as usize);
    for _ in 0..args.count {
        let t = std::time::Instant::now();
        let r = policy.eval_input(ep, input.as_ref())?;
        ns.push(t.elapsed().as_nanos() as u64);
        std::hint::black_box(r);
    }
    ns.sort_unstable();
    let pct = |p: f64| ns[((ns.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0;
    let engine = match &policy {
        Policy::Native(_) => "native",
        Policy::Wasm(_) => "wasm",
    };
    let report = serde_json::json!({
        "engine": engine,
        "count": ns.len(),
        "load_ms": load.as_secs_f64() * 1000.0,
        "p50_us": pct(0.5),
        "p90_us": pct(0.9),
        "p99_us": pct(0.99),
        "mean_us": mean,
        "result": result,
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{report}");
    } else {
        let _ = writeln!(out, "engine:  {engine}");
        let _ = writeln!(out, "load:    {:.1} ms", load.as_secs_f64() * 1000.0);
        let _ = writeln!(out, "evals:   {}", ns.len());
        let _ = writeln!(out, "p50:     {:.2} µs", pct(0.5));
        let _ = writeln!(out, "p90:     {:.2} µs", pct(0.9));
        let _ = writeln!(out, "p99:     {:.2} µs", pct(0.99));
        let _ = writeln!(out, "mean:    {mean:.2} µs");
        let _ = writeln!(
            out,
            "result:  {}",
            serde_json::to_string(&result).unwrap_or_default()
        );
    }
    Ok(0)
}
