//! Rego source evaluated natively by the `regorus` interpreter.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regorus::unstable::{Expr, Rule, RuleHead};
use serde_json::Value as Json;
use wasmlayer_core::Error;

pub use crate::document::{normalize_entrypoint, slash_entrypoint};
use crate::memory;

/// Rego sources and the data document, as read from files.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// (file name, Rego text), in the order given.
    pub modules: Vec<(String, String)>,
    /// The merged data document: an object (empty when no data was given).
    pub data: Json,
    /// Parse the modules as Rego v0, the syntax before OPA 1.0 (`p[x] { ... }`
    /// rules, no `if` or `contains`; Gatekeeper's templates are written in
    /// it), as OPA's `--v0-compatible` does. A module that imports `rego.v1`
    /// is still v1. Off: Rego v1, OPA 1.x's default.
    pub rego_v0: bool,
}

impl Sources {
    /// Reads `.rego` files and JSON data files; a directory is read
    /// recursively (files sorted by name). Every JSON file is merged into
    /// the root of the data document.
    pub fn read(paths: &[PathBuf]) -> Result<Sources, Error> {
        let mut sources = Sources {
            modules: Vec::new(),
            data: Json::Object(Default::default()),
            rego_v0: false,
        };
        for path in paths {
            sources.read_path(path, true)?;
        }
        Ok(sources)
    }

    fn read_path(&mut self, path: &Path, explicit: bool) -> Result<(), Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            let mut entries = std::fs::read_dir(path)
                .map_err(|e| Error::io(path, e))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::io(path, e))?;
            entries.sort();
            // Hidden entries are not policy: editors' files, and the
            // `..data` links of a Kubernetes ConfigMap volume, which would
            // load every file again.
            entries.retain(|e| {
                !e.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            });
            for entry in entries {
                self.read_path(&entry, false)?;
            }
            return Ok(());
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("rego") => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                self.modules.push((path.display().to_string(), text));
            }
            Some("json") => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                let value: Json = serde_json::from_str(&text).map_err(|e| {
                    Error::policy(format!("{}: not valid JSON: {e}", path.display()))
                })?;
                self.add_data(value, &path.display().to_string())?;
            }
            _ if explicit => {
                return Err(Error::usage(format!(
                    "{}: expected a .rego policy or a .json data file",
                    path.display()
                )))
            }
            _ => {}
        }
        Ok(())
    }

    /// Merges `value` (an object) into the data document.
    pub fn add_data(&mut self, value: Json, origin: &str) -> Result<(), Error> {
        crate::document::add_data(&mut self.data, value, origin)
    }
}

/// What kind of rule a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// `x := ...`, `x if ...`, `default x := ...`
    Complete,
    /// `x contains v if ...` or an object rule `x[k] := v if ...`
    Partial,
    /// `f(a) := ...`
    Function,
}

/// A loaded policy, evaluated by the native interpreter.
///
/// Every evaluation may allocate [`crate::memory::MAX_MEMORY`]:
/// [`NativePolicy::eval`] runs on the calling thread (past the limit, the
/// process exits 137), [`NativePolicy::eval_isolated`] on a worker thread
/// of the policy's own (past the limit, an error, and the process goes on).
pub struct NativePolicy {
    engine: regorus::Engine,
    /// What the last evaluation printed.
    prints: Vec<String>,
    rules: Vec<(String, RuleKind)>,
    packages: Vec<String>,
    /// The thread [`NativePolicy::isolated`] runs on, with its own copy of
    /// the policy; started when first needed.
    worker: Option<memory::Worker<crate::Policy>>,
}

impl Clone for NativePolicy {
    fn clone(&self) -> Self {
        NativePolicy {
            engine: self.engine.clone(),
            prints: self.prints.clone(),
            rules: self.rules.clone(),
            packages: self.packages.clone(),
            worker: None,
        }
    }
}

/// What an entrypoint names.
#[derive(Debug, Clone)]
enum Target {
    Rule(String),
    Document(String),
}

impl std::fmt::Debug for NativePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePolicy")
            .field("packages", &self.packages)
            .finish()
    }
}

impl NativePolicy {
    /// Parses the modules and loads the data. Errors name file, line and column.
    pub fn new(sources: &Sources) -> Result<NativePolicy, Error> {
        if sources.modules.is_empty() {
            return Err(Error::policy(
                "no Rego policy given (expected at least one .rego file)",
            ));
        }
        let mut engine = regorus::Engine::new();
        // `print` output goes to the caller, not to our stdout.
        engine.set_gather_prints(true);
        // A runaway evaluation ends with an error, as on the Wasm host.
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: crate::document::DEFAULT_TIMEOUT,
            check_interval: std::num::NonZeroU32::new(64).expect("non-zero"),
        });
        crate::builtins::add_extensions(&mut engine).map_err(Error::host)?;
        engine.set_rego_v0(sources.rego_v0);
        let mut packages = Vec::new();
        for (name, text) in &sources.modules {
            let pkg = engine
                .add_policy(name.clone(), text.clone())
                .map_err(|e| Error::policy(format!("{e}")))?;
            if !packages.contains(&pkg) {
                packages.push(pkg);
            }
        }
        if !sources.data.is_null() {
            engine
                .add_data(regorus::Value::from(sources.data.clone()))
                .map_err(|e| Error::policy(format!("data: {e}")))?;
        }
        let mut rules = Vec::new();
        for module in engine.get_modules().clone() {
            let pkg = regorus::utils::get_path_string(&module.package.refr, Some("data"))
                .map_err(|e| Error::policy(format!("{e}")))?;
            for rule in &module.policy {
                let (refr, kind) = match rule.as_ref() {
                    Rule::Spec { head, .. } => match head {
                        RuleHead::Compr { refr, .. } => (refr, RuleKind::Complete),
                        RuleHead::Set {
                            refr, key: Some(_), ..
                        } => (refr, RuleKind::Partial),
                        RuleHead::Set {
                            refr, key: None, ..
                        } => (refr, complete_or_object(refr)),
                        RuleHead::Func { refr, .. } => (refr, RuleKind::Function),
                    },
                    Rule::Default { refr, args, .. } => (
                        refr,
                        if args.is_empty() {
                            RuleKind::Complete
                        } else {
                            RuleKind::Function
                        },
                    ),
                };
                let Some(name) = static_path(refr) else {
                    continue;
                };
                let path = format!("{pkg}.{name}");
                if !rules.iter().any(|(p, _)| *p == path) {
                    rules.push((path, kind));
                }
            }
        }
        Ok(NativePolicy {
            engine,
            prints: Vec::new(),
            rules,
            packages,
            worker: None,
        })
    }

    /// Packages, as `data.a.b`.
    pub fn packages(&self) -> &[String] {
        &self.packages
    }

    /// Every rule, as (`data.pkg.rule`, kind), in source order.
    pub fn rules(&self) -> &[(String, RuleKind)] {
        &self.rules
    }

    /// The entrypoint used when none is given: the only package's document.
    pub fn default_entrypoint(&self) -> Result<String, Error> {
        match self.packages.as_slice() {
            [one] => Ok(one.clone()),
            many => Err(Error::usage(format!(
                "the policy has {} packages ({}); choose one with --entrypoint",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    /// Evaluates `entrypoint` (`data.pkg.rule`, `pkg/rule` or `pkg.rule`)
    /// with `input` (None: input is undefined) and returns OPA's result set:
    /// `[{"result": value}]`, or `[]` when the entrypoint is undefined.
    ///
    /// Runs on the calling thread with a budget of [`memory::MAX_MEMORY`]
    /// (on a worker, under the worker's): the size-checked builtins end
    /// with [`Error::MemoryLimit`], any other allocation past the budget
    /// ends the process (exit 137). [`NativePolicy::isolated`] and
    /// [`NativePolicy::eval_isolated`] survive both.
    pub fn eval(&mut self, entrypoint: &str, input: Option<&Json>) -> Result<Json, Error> {
        let target = self.target(entrypoint)?;
        let engine = &mut self.engine;
        let (result, prints) = memory::with_budget(memory::MAX_MEMORY, || {
            memory::evaluation_started();
            let input = input.map_or(regorus::Value::Undefined, |i| {
                regorus::Value::from(i.clone())
            });
            evaluate(engine, &target, input)
        });
        self.prints = prints;
        result
    }

    /// Like [`NativePolicy::eval`], on the policy's worker thread (see
    /// [`NativePolicy::isolated`]).
    pub fn eval_isolated(&mut self, entrypoint: &str, input: Option<&Json>) -> Result<Json, Error> {
        // Check the entrypoint here, for an error without a hand-over.
        self.target(entrypoint)?;
        let entrypoint = entrypoint.to_string();
        let input = input.cloned();
        let (result, prints) = self.isolated(move |p| {
            let result = p.eval(Some(&entrypoint), input.as_ref());
            (result, p.prints().to_vec())
        })?;
        self.prints = prints;
        result
    }

    /// Runs `f` on a worker thread that keeps its own copy of the policy,
    /// and waits for it: every evaluation `f` makes there is bounded by
    /// [`memory::MAX_MEMORY`]. Past it, the result is
    /// [`Error::MemoryLimit`] and the process goes on: the worker is left
    /// behind (see [`crate::memory`]) and the next call starts a new one.
    /// This is what servers and one-shot commands use; the cost is one
    /// hand-over between two threads per call.
    pub fn isolated<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut crate::Policy) -> T + Send + 'static,
    ) -> Result<T, Error> {
        if self.worker.as_ref().is_none_or(|w| w.is_finished()) {
            self.worker = None;
            let copy = crate::Policy::Native(self.clone());
            let worker = memory::Worker::spawn(copy, memory::MAX_MEMORY)?;
            self.worker = Some(worker);
        }
        let worker = self.worker.as_mut().expect("started above");
        worker.run(f).map_err(|stopped| {
            self.worker = None;
            stopped.into()
        })
    }

    /// What `entrypoint` names, or an error listing the rules.
    fn target(&self, entrypoint: &str) -> Result<Target, Error> {
        let path = normalize_entrypoint(entrypoint);
        let is_rule = self
            .rules
            .iter()
            .any(|(p, k)| *p == path && *k != RuleKind::Function);
        if is_rule {
            Ok(Target::Rule(path))
        } else if self.is_document(&path) {
            Ok(Target::Document(path))
        } else {
            Err(Error::policy(format!(
                "entrypoint {entrypoint} is not a rule or package of this policy (rules: {})",
                self.rules
                    .iter()
                    .filter(|(_, k)| *k != RuleKind::Function)
                    .map(|(p, _)| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// What the last evaluation printed (`print(...)`).
    pub fn prints(&self) -> &[String] {
        &self.prints
    }

    fn is_document(&self, path: &str) -> bool {
        path == "data"
            || self
                .packages
                .iter()
                .any(|p| p == path || p.starts_with(&format!("{path}.")))
            || self
                .rules
                .iter()
                .any(|(p, _)| p.starts_with(&format!("{path}.")))
    }

    /// Runs every `test_*` rule, like `opa test`.
    pub fn run_tests(&self) -> Vec<TestOutcome> {
        let mut out = Vec::new();
        for (path, kind) in &self.rules {
            let name = path.rsplit('.').next().unwrap_or(path);
            if !name.starts_with("test_") || *kind == RuleKind::Function {
                continue;
            }
            let mut engine = self.engine.clone();
            let rule = path.clone();
            let start = Instant::now();
            // Each test on a thread of its own, so that one past the memory
            // limit is reported as an error and the others still run.
            let outcome = memory::isolated(memory::MAX_MEMORY, move || {
                let result = engine.eval_rule(rule);
                let prints = engine.take_prints().unwrap_or_default();
                let status = match result {
                    Ok(regorus::Value::Bool(true)) => TestStatus::Pass,
                    Ok(regorus::Value::Undefined) => TestStatus::Fail("undefined".into()),
                    Ok(other) => {
                        TestStatus::Fail(other.to_json_str().unwrap_or_else(|_| "?".into()))
                    }
                    Err(e) => TestStatus::Error(describe(&eval_error(e))),
                };
                (status, prints)
            });
            let elapsed = start.elapsed();
            let (status, prints) = match outcome {
                Ok(done) => done,
                Err(stopped) => (TestStatus::Error(describe(&stopped.into())), Vec::new()),
            };
            out.push(TestOutcome {
                name: path.clone(),
                status,
                elapsed,
                prints,
            });
        }
        out
    }
}

/// Evaluates `target` on `engine` with `input`: the result set and what
/// the evaluation printed.
fn evaluate(
    engine: &mut regorus::Engine,
    target: &Target,
    input: regorus::Value,
) -> (Result<Json, Error>, Vec<String>) {
    // One engine serves every evaluation: each evaluation starts from clean
    // state, and the input is replaced (undefined when None).
    engine.set_input(input);
    let value = match target {
        Target::Rule(path) => engine.eval_rule(path.clone()).map_err(eval_error),
        Target::Document(path) => engine
            .eval_query(path.clone(), false)
            .map_err(eval_error)
            .map(|results| {
                results
                    .result
                    .into_iter()
                    .next()
                    .and_then(|r| r.expressions.into_iter().next())
                    .map(|e| e.value)
                    .unwrap_or(regorus::Value::Undefined)
            }),
    };
    // Gathered prints are taken every time, so that an engine serving many
    // evaluations does not pile them up.
    let prints = engine.take_prints().unwrap_or_default();
    (value.map(|v| result_set(&v)), prints)
}

/// An evaluation error: past the time limit is a timeout, and a builtin
/// refused for its size is past the memory limit, like a guest's.
fn eval_error(e: anyhow::Error) -> Error {
    if memory::take_refused() {
        return Error::MemoryLimit(memory::limit());
    }
    let msg = format!("{e}");
    if msg.contains("exceeded time limit") {
        Error::Timeout(crate::document::DEFAULT_TIMEOUT)
    } else {
        Error::policy(msg)
    }
}

/// An evaluation's error as a policy's user reads it: past a limit, the
/// policy evaluation (not a guest) is named.
pub fn describe(e: &Error) -> String {
    match e {
        Error::MemoryLimit(limit) => memory::limit_message(*limit),
        Error::Timeout(d) => format!(
            "policy evaluation exceeded its wall-clock timeout ({})",
            wasmlayer_core::limits::format_duration(*d)
        ),
        other => other.to_string(),
    }
}

/// One `test_*` rule's outcome.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub name: String,
    pub status: TestStatus,
    pub elapsed: Duration,
    pub prints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestStatus {
    Pass,
    /// The rule was not true: its value, or "undefined".
    Fail(String),
    /// Evaluation failed.
    Error(String),
}

/// OPA's result set for one value: `[{"result": v}]`, `[]` when undefined.
pub fn result_set(value: &regorus::Value) -> Json {
    if *value == regorus::Value::Undefined {
        return Json::Array(Vec::new());
    }
    let v = serde_json::to_value(value).unwrap_or(Json::Null);
    serde_json::json!([{ "result": v }])
}

fn complete_or_object(refr: &Expr) -> RuleKind {
    // `x[k] := v` parses as a Set head without key whose ref ends in a bracket.
    if matches!(refr, Expr::RefBrack { .. }) {
        RuleKind::Partial
    } else {
        RuleKind::Complete
    }
}

/// The static part of a rule's ref: `a.b` for `a.b[x]`; None for odd refs.
fn static_path(refr: &Expr) -> Option<String> {
    match refr {
        Expr::Var { span, .. } => Some(span.text().to_string()),
        Expr::RefDot { refr, field, .. } => {
            Some(format!("{}.{}", static_path(refr)?, field.0.text()))
        }
        Expr::RefBrack { refr, index, .. } => match index.as_ref() {
            Expr::String { value, .. } => Some(format!(
                "{}.{}",
                static_path(refr)?,
                value.as_string().ok()?.as_ref()
            )),
            _ => static_path(refr),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> NativePolicy {
        // (mutable: evaluation reuses the engine)
        NativePolicy::new(&Sources {
            modules: vec![("p.rego".into(), text.into())],
            data: serde_json::json!({"limits": {"max": 3}}),
            rego_v0: false,
        })
        .unwrap()
    }

    #[test]
    fn evaluates_rules_packages_and_undefined() {
        let mut p = policy(
            "package example\ndefault allow := false\nallow if input.user == \"alice\"\n\
             deny contains msg if { input.n > data.limits.max; msg := sprintf(\"n=%d\", [input.n]) }\n\
             maybe if input.missing\nf(x) := x + 1\n",
        );
        let input = serde_json::json!({"user": "alice", "n": 5});
        assert_eq!(
            p.eval("example/allow", Some(&input)).unwrap(),
            serde_json::json!([{"result": true}])
        );
        assert_eq!(
            p.eval("data.example.deny", Some(&input)).unwrap(),
            serde_json::json!([{"result": ["n=5"]}])
        );
        assert_eq!(
            p.eval("example.maybe", Some(&input)).unwrap(),
            serde_json::json!([])
        );
        assert_eq!(
            p.eval("example/allow", None).unwrap(),
            serde_json::json!([{"result": false}])
        );
        let doc = p.eval("data.example", Some(&input)).unwrap();
        assert_eq!(doc[0]["result"]["allow"], serde_json::json!(true));
        let err = p.eval("example/nope", Some(&input)).unwrap_err();
        assert!(err.to_string().contains("example/nope"), "{err}");
        let kinds: Vec<_> = p.rules().iter().map(|(p, k)| (p.as_str(), *k)).collect();
        assert!(kinds.contains(&("data.example.deny", RuleKind::Partial)));
        assert!(kinds.contains(&("data.example.f", RuleKind::Function)));
    }

    #[test]
    fn syntax_errors_name_the_place() {
        let err = NativePolicy::new(&Sources {
            modules: vec![("bad.rego".into(), "package x\nallow if {\n".into())],
            data: Json::Null,
            rego_v0: false,
        })
        .unwrap_err();
        assert!(err.to_string().contains("bad.rego:"), "{err}");
    }

    #[test]
    fn tests_pass_and_fail() {
        let p = policy(
            "package t\nok := 1\ntest_ok if ok == 1\ntest_bad if ok == 2\ntest_false := false\n",
        );
        let outcomes = p.run_tests();
        let by_name: Vec<_> = outcomes
            .iter()
            .map(|o| (o.name.as_str(), o.status.clone()))
            .collect();
        assert_eq!(by_name[0], ("data.t.test_ok", TestStatus::Pass));
        assert_eq!(
            by_name[1],
            ("data.t.test_bad", TestStatus::Fail("undefined".into()))
        );
        assert_eq!(
            by_name[2],
            ("data.t.test_false", TestStatus::Fail("false".into()))
        );
    }

    #[test]
    fn builtins_past_the_memory_limit_are_refused_before_allocating() {
        let mut p = policy(
            "package rg\nrange := count(numbers.range(1, 1000000000))\n\
             step := count(numbers.range_step(1, 1000000000, 2))\n\
             cidrs := count(net.cidr_expand(\"::/0\"))\n\
             fine := count(numbers.range(1, 1000))\n",
        );
        for rule in ["rg/range", "rg/step", "rg/cidrs"] {
            let err = p.eval(rule, None).unwrap_err();
            assert!(
                matches!(err, Error::MemoryLimit(m) if m == memory::MAX_MEMORY),
                "{err}"
            );
            let err = p.eval_isolated(rule, None).unwrap_err();
            assert!(matches!(err, Error::MemoryLimit(_)), "{err}");
        }
        assert_eq!(
            p.eval_isolated("rg/fine", None).unwrap(),
            serde_json::json!([{"result": 1000}])
        );
        assert_eq!(
            p.eval("rg/fine", None).unwrap(),
            serde_json::json!([{"result": 1000}])
        );
    }

    #[test]
    fn the_size_checked_builtins_agree_with_the_interpreter() {
        let rules = "package b\nr1 := numbers.range(1, 5)\nr2 := numbers.range(3, -2)\n\
                     r3 := numbers.range(2, 2)\ns1 := numbers.range_step(0, 10, 3)\n\
                     s2 := numbers.range_step(10, 0, 4)\ns3 := numbers.range_step(1, 1, 7)\n\
                     c1 := net.cidr_expand(\"192.168.1.0/30\")\nc2 := net.cidr_expand(\"10.0.0.1/32\")\n\
                     c3 := net.cidr_expand(\"10.0.0.0/31\")\nc4 := net.cidr_expand(\"fd00::/126\")\n";
        let mut ours = policy(rules);
        let mut plain = regorus::Engine::new();
        plain.add_policy("b.rego".into(), rules.into()).unwrap();
        for rule in ["r1", "r2", "r3", "s1", "s2", "s3", "c1", "c2", "c3", "c4"] {
            let want = plain.eval_rule(format!("data.b.{rule}")).unwrap();
            assert_eq!(
                ours.eval(&format!("b/{rule}"), None).unwrap(),
                result_set(&want),
                "{rule}"
            );
        }
        for bad in [
            "numbers.range(1, 2.5)",
            "numbers.range(\"a\", 2)",
            "numbers.range_step(1, 5, 0)",
            "numbers.range_step(1, 5, -1)",
            "net.cidr_expand(\"nope\")",
        ] {
            let text = format!("package e\nx := {bad}\n");
            let mut plain = regorus::Engine::new();
            plain.add_policy("e.rego".into(), text.clone()).unwrap();
            assert!(plain.eval_rule("data.e.x".into()).is_err(), "{bad}");
            let err = policy(&text).eval("e/x", None).unwrap_err();
            assert!(matches!(err, Error::Policy(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn a_stopped_worker_goes_on_once_its_time_is_up_and_frees_what_it_held() {
        // Each round allocates a new 20 KB string: past 256 MiB in about
        // 13,000 rounds, long before the wall-clock limit.
        let p = policy(
            "package g\na := concat(\"\", [\"a\" | some _ in numbers.range(1, 20000)])\n\
             grow := count([concat(\"\", [a, sprintf(\"%d\", [i])]) | some i in numbers.range(1, 40000)])\n",
        );
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ended.clone();
        let mut worker = memory::Worker::spawn(p.engine.clone(), memory::MAX_MEMORY).unwrap();
        let start = Instant::now();
        let r = worker.run(move |engine| {
            let r = engine.eval_rule("data.g.grow".into());
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            r.map(|_| ()).map_err(|e| e.to_string())
        });
        assert!(matches!(r, Err(memory::Stopped::Exceeded(_))), "{r:?}");
        // Reported while the worker still sleeps, not when it ends.
        assert!(
            !ended.load(std::sync::atomic::Ordering::SeqCst),
            "reported only once the worker ended"
        );
        // The worker sleeps until the evaluation's wall-clock limit is
        // past, then its timer ends it.
        while !ended.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the worker never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn entrypoint_forms() {
        assert_eq!(normalize_entrypoint("a/b"), "data.a.b");
        assert_eq!(normalize_entrypoint("data.a.b"), "data.a.b");
        assert_eq!(normalize_entrypoint("a.b"), "data.a.b");
        assert_eq!(slash_entrypoint("data.a.b"), "a/b");
    }
}
