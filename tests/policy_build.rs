//! `policy build` end to end: Rego built into an OPA-ABI Wasm module by
//! `wasm_build::build_module`, evaluated by OPA's own JavaScript SDK
//! (`@open-policy-agent/opa-wasm`, tests/node) and compared with regorus
//! evaluating the same policy, data and input natively.
//!
//! The table is tests/fixtures/policies/build/: one directory per policy
//! with its `.rego` files, an optional `data.json` and a `cases.json`
//! (`{"entrypoints": [...]?, "cases": [{"entrypoint", "input"?}],
//! "host_builtins": [...]?, "rego_v0": bool?}`). Each evaluator is a function from a
//! [`PolicyCase`] to one [`Outcome`] per case, so another evaluator is one
//! more column: a function of the same shape compared in the same loop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value as Json};
use wasmlayer_policy::wasm_build::{build_module, BuildInput, RUNTIME_WASM};

/// The npm SDK's rule for the module's size.
const MAX_MODULE_SIZE: usize = 1024 * 1024;

/// What a compiled module may weigh at most: the size of the module OPA's
/// own compiler makes from its RBAC example (142 KB); ours carry only the
/// builtins they call.
const MAX_COMPILED_SIZE: usize = 142 * 1024;

/// Policies also evaluated through the interpreter module.
const INTERPRETER_CASES: &[&str] = &[
    "data-lookup",
    "gatekeeper-v0-resources",
    "required-labels",
    "strings",
];

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// One policy of the table.
#[derive(Debug, Clone)]
pub struct PolicyCase {
    pub name: String,
    pub modules: Vec<(String, String)>,
    /// data.json, or null.
    pub data: Json,
    /// Entrypoints to build with (empty: every rule).
    pub entrypoints: Vec<String>,
    pub evals: Vec<Eval>,
    /// The builtins the module must ask its host for.
    pub host_builtins: Vec<String>,
    /// The modules are Rego v0 (`"rego_v0": true`; `--v0-compatible`).
    pub rego_v0: bool,
}

#[derive(Debug, Clone)]
pub struct Eval {
    /// `pkg/rule` (or a package).
    pub entrypoint: String,
    /// None: no input (undefined).
    pub input: Option<Json>,
}

/// What one evaluation gave: an OPA result set (`[{"result": v}]` or `[]`)
/// or an error.
#[derive(Debug, Clone)]
pub enum Outcome {
    Result(Json),
    Error(String),
}

impl Outcome {
    /// Same result set, or both errors (messages differ between hosts).
    pub fn agrees(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Result(a), Outcome::Result(b)) => a == b,
            (Outcome::Error(_), Outcome::Error(_)) => true,
            _ => false,
        }
    }
}

/// The table of policies under tests/fixtures/policies/build/, and OPA's
/// compiled sample policies under tests/fixtures/policies/opa/ (their
/// sources).
pub fn table() -> Vec<PolicyCase> {
    let mut cases = table_in("build");
    cases.extend(table_in("opa"));
    cases
}

/// OPA's sample policies, each with the module `opa build -t wasm` made
/// from the same source (tests/fixtures/policies/opa/README.md).
pub fn opa_table() -> Vec<(PolicyCase, Vec<u8>)> {
    let dir = root().join("tests/fixtures/policies/opa");
    table_in("opa")
        .into_iter()
        .map(|case| {
            let wasm = std::fs::read(dir.join(&case.name).join("opa.wasm")).unwrap();
            (case, wasm)
        })
        .collect()
}

fn table_in(sub: &str) -> Vec<PolicyCase> {
    let dir = root().join("tests/fixtures/policies").join(sub);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    names.iter().map(|p| load_case(p)).collect()
}

fn load_case(dir: &Path) -> PolicyCase {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let modules: Vec<(String, String)> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rego"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    let read_json = |name: &str| -> Option<Json> {
        let p = dir.join(name);
        p.exists().then(|| {
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
    };
    let data = read_json("data.json").unwrap_or(Json::Null);
    let spec =
        read_json("cases.json").unwrap_or_else(|| panic!("{}: no cases.json", dir.display()));
    let strings = |v: &Json| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let evals = spec["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Eval {
            entrypoint: c["entrypoint"].as_str().unwrap().to_string(),
            input: c.get("input").cloned(),
        })
        .collect();
    PolicyCase {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        modules,
        data,
        entrypoints: strings(&spec["entrypoints"]),
        evals,
        host_builtins: strings(&spec["host_builtins"]),
        rego_v0: spec["rego_v0"].as_bool().unwrap_or(false),
    }
}

/// `data.a.b` for `a/b`.
fn data_path(entrypoint: &str) -> String {
    format!("data.{}", entrypoint.replace('/', "."))
}

fn regorus_value(v: &Json) -> regorus::Value {
    regorus::Value::from_json_str(&v.to_string()).unwrap()
}

/// The first column: regorus, natively.
pub fn native(case: &PolicyCase) -> Vec<Outcome> {
    case.evals
        .iter()
        .map(|e| {
            let mut engine = regorus::Engine::new();
            engine.set_rego_v0(case.rego_v0);
            for (name, text) in &case.modules {
                engine.add_policy(name.clone(), text.clone()).unwrap();
            }
            if case.data.is_object() {
                engine.add_data(regorus_value(&case.data)).unwrap();
            }
            if let Some(input) = &e.input {
                engine.set_input(regorus_value(input));
            }
            // A query gives the value of a rule, a package or a prefix of
            // a rule path alike.
            let value = engine.eval_query(data_path(&e.entrypoint), false).map(|r| {
                r.result
                    .first()
                    .map(|r| r.expressions[0].value.clone())
                    .unwrap_or(regorus::Value::Undefined)
            });
            match value {
                Ok(regorus::Value::Undefined) => Outcome::Result(json!([])),
                Ok(v) => Outcome::Result(json!([{ "result": serde_json::to_value(&v).unwrap() }])),
                Err(err) => Outcome::Error(format!("{err}")),
            }
        })
        .collect()
}

/// The case's evaluations through wasmlayer's OPA-Wasm host, one instance
/// reused for all of them; with `set_data`, the data is given by the host.
pub fn our_wasm_host(case: &PolicyCase, wasm: &[u8], set_data: bool) -> Vec<Outcome> {
    use wasmlayer_policy::{OpaWasmPolicy, WasmPolicySource};
    let runtime = wasmlayer_policy::policy_runtime().unwrap();
    let source = WasmPolicySource::from_bytes(wasm).unwrap();
    let data = if set_data {
        case.data.clone()
    } else {
        Json::Null
    };
    let policy = OpaWasmPolicy::new(runtime, &source, &data, &Default::default())
        .unwrap_or_else(|e| panic!("{}: our host cannot load the module: {e}", case.name));
    evaluate_all(case, wasmlayer_policy::Policy::Wasm(Box::new(policy)))
}

/// Every evaluation of the case on one policy, in order.
fn evaluate_all(case: &PolicyCase, mut policy: wasmlayer_policy::Policy) -> Vec<Outcome> {
    case.evals
        .iter()
        .map(
            |e| match policy.eval(Some(&e.entrypoint), e.input.as_ref()) {
                Ok(v) => Outcome::Result(v),
                Err(err) => Outcome::Error(err.to_string()),
            },
        )
        .collect()
}

/// The case's evaluations through wasmlayer's native path (`Policy` on the
/// Rego source), one engine reused for all of them.
pub fn our_native(case: &PolicyCase) -> Vec<Outcome> {
    let sources = wasmlayer_policy::Sources {
        modules: case.modules.clone(),
        data: if case.data.is_object() {
            case.data.clone()
        } else {
            json!({})
        },
        rego_v0: case.rego_v0,
    };
    evaluate_all(
        case,
        wasmlayer_policy::Policy::Native(wasmlayer_policy::NativePolicy::new(&sources).unwrap()),
    )
}

/// The module a case builds to; with `embed_data`, its data.json is
/// compiled in.
pub fn build(case: &PolicyCase, embed_data: bool) -> Vec<u8> {
    build_as(case, embed_data, false)
}

/// The module a case builds to: compiled, or (`interpreter`) the module
/// that interprets the policy.
pub fn build_as(case: &PolicyCase, embed_data: bool, interpreter: bool) -> Vec<u8> {
    build_module(&BuildInput {
        interpreter,
        modules: case.modules.clone(),
        data: if embed_data {
            case.data.clone()
        } else {
            Json::Null
        },
        entrypoints: case.entrypoints.clone(),
        rego_v0: case.rego_v0,
    })
    .unwrap_or_else(|e| panic!("{}: build failed: {e}", case.name))
}

/// tests/node, with the SDK installed by scripts/setup.sh.
fn node_dir() -> PathBuf {
    let dir = root().join("tests/node");
    assert!(
        dir.join("node_modules/@open-policy-agent/opa-wasm")
            .is_dir(),
        "OPA's JavaScript SDK is not installed in {}: run scripts/setup.sh",
        dir.display()
    );
    dir
}

/// What the SDK saw in a module: its entrypoints and the builtins it asks
/// its host for.
#[derive(Debug)]
pub struct SdkRun {
    pub entrypoints: Json,
    pub builtins: Vec<String>,
    pub outcomes: Vec<Outcome>,
}

/// How the SDK is driven.
#[derive(Debug, Clone, Copy, Default)]
pub struct SdkMode {
    /// `setData(data.json)` before evaluating.
    pub set_data: bool,
    /// Pretend the module has this ABI minor version: 1 makes the SDK use
    /// the context API (`opa_eval_ctx_*`, `eval`) instead of `opa_eval`.
    pub abi_minor: Option<u32>,
}

/// The SDK column: `loadPolicy(wasm)`, maybe `setData(data)`, then
/// `evaluate(input, entrypoint)` for every case.
pub fn sdk(case: &PolicyCase, wasm: &[u8], mode: SdkMode, tag: &str) -> SdkRun {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("policy_build");
    std::fs::create_dir_all(&tmp).unwrap();
    let wasm_path = tmp.join(format!("{}-{tag}.wasm", case.name));
    let cases_path = tmp.join(format!("{}-{tag}.json", case.name));
    std::fs::write(&wasm_path, wasm).unwrap();
    let cases: Vec<Json> = case
        .evals
        .iter()
        .map(|e| match &e.input {
            Some(i) => json!({"entrypoint": e.entrypoint, "input": i}),
            None => json!({"entrypoint": e.entrypoint}),
        })
        .collect();
    let mut spec = json!({ "cases": cases });
    if mode.set_data {
        spec["data"] = case.data.clone();
    }
    if let Some(minor) = mode.abi_minor {
        spec["abi_minor"] = json!(minor);
    }
    std::fs::write(&cases_path, spec.to_string()).unwrap();

    let dir = node_dir();
    let out = Command::new("node")
        .arg(dir.join("opa-eval.js"))
        .arg(&wasm_path)
        .arg(&cases_path)
        .current_dir(&dir)
        .output()
        .expect("run node (Node.js is required: scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}: the SDK failed ({}):\n{stdout}\n{stderr}",
        case.name,
        out.status
    );
    let mut lines = stdout.lines().map(|l| {
        serde_json::from_str::<Json>(l)
            .unwrap_or_else(|e| panic!("{}: bad SDK output line {l:?}: {e}", case.name))
    });
    let head = lines.next().expect("SDK output");
    let outcomes: Vec<Outcome> = lines
        .map(|l| match l.get("result") {
            Some(r) => Outcome::Result(r.clone()),
            None => Outcome::Error(l["error"].as_str().unwrap_or_default().to_string()),
        })
        .collect();
    assert_eq!(
        outcomes.len(),
        case.evals.len(),
        "{}: SDK output:\n{stdout}\n{stderr}",
        case.name
    );
    SdkRun {
        entrypoints: head["entrypoints"].clone(),
        builtins: head["builtins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap().to_string())
            .collect(),
        outcomes,
    }
}

#[test]
fn table_has_the_policies_it_needs() {
    let t = table();
    assert!(t.len() >= 8, "{} policies", t.len());
    let evals: usize = t.iter().map(|c| c.evals.len()).sum();
    assert!(evals >= 40, "{evals} evaluations");
}

/// Sets in a result, as arrays in any order: OPA writes sets of objects in
/// an order of its own.
fn canonical(v: &Json) -> Json {
    match v {
        Json::Array(a) => {
            let mut items: Vec<Json> = a.iter().map(canonical).collect();
            items.sort_by_key(|x| x.to_string());
            Json::Array(items)
        }
        Json::Object(o) => Json::Object(o.iter().map(|(k, v)| (k.clone(), canonical(v))).collect()),
        other => other.clone(),
    }
}

/// OPA's own compiled modules of its sample policies, under our host, give
/// the answers our compiled modules of the same sources give (and regorus
/// natively): errors where OPA's module errs.
#[test]
fn opa_modules_agree_with_ours_on_the_same_source() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for (case, opa_wasm) in opa_table() {
        let expected = native(&case);
        let ours = our_wasm_host(&case, &build(&case, true), false);
        let opa = our_wasm_host(&case, &opa_wasm, true);
        for (i, ((want, a), b)) in expected.iter().zip(&ours).zip(&opa).enumerate() {
            compared += 1;
            let same = match (a, b) {
                (Outcome::Result(a), Outcome::Result(b)) => canonical(a) == canonical(b),
                (Outcome::Error(_), Outcome::Error(_)) => true,
                _ => false,
            };
            if !same || !want.agrees(a) {
                failures.push(format!(
                    "{} case {i}:\n  native: {want:?}\n  ours:   {a:?}\n  OPA's:  {b:?}",
                    case.name
                ));
            }
        }
    }
    assert!(compared >= 15, "{compared} evaluations");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every policy of the table, built to a module, gives under OPA's SDK the
/// results regorus gives natively: with the data compiled in (through
/// `opa_eval` and through the context API), and with it set by the host
/// instead.
#[test]
fn sdk_agrees_with_native_regorus() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in table() {
        let expected = native(&case);
        let embedded = build(&case, true);
        let mut runs = vec![
            (
                "embedded",
                sdk(&case, &embedded, SdkMode::default(), "embedded"),
            ),
            (
                "context API",
                sdk(
                    &case,
                    &embedded,
                    SdkMode {
                        abi_minor: Some(1),
                        ..SdkMode::default()
                    },
                    "ctx",
                ),
            ),
        ];
        if case.data.is_object() {
            let mode = SdkMode {
                set_data: true,
                ..SdkMode::default()
            };
            runs.push((
                "set-data",
                sdk(&case, &build(&case, false), mode, "set-data"),
            ));
        }
        // Our own evaluators: the OPA-Wasm host on the same modules, and
        // Rego source through wasmlayer's native path.
        let mut ours = vec![("our Wasm host", our_wasm_host(&case, &embedded, false))];
        if case.data.is_object() {
            ours.push((
                "our Wasm host, data set",
                our_wasm_host(&case, &build(&case, false), true),
            ));
        }
        ours.push(("our native", our_native(&case)));
        // The interpreter module (`policy build --interpreter`) on a few
        // policies: compiling it takes seconds.
        if INTERPRETER_CASES.contains(&case.name.as_str()) {
            ours.push((
                "interpreter module",
                our_wasm_host(&case, &build_as(&case, true, true), false),
            ));
        }
        for (how, outcomes) in ours {
            for (i, (want, got)) in expected.iter().zip(&outcomes).enumerate() {
                compared += 1;
                if !want.agrees(got) {
                    failures.push(format!(
                        "{} ({how}) case {i} {}:\n  native: {want:?}\n  ours:   {got:?}",
                        case.name, case.evals[i].entrypoint
                    ));
                }
            }
        }
        for (how, run) in runs {
            let mut builtins = run.builtins.clone();
            builtins.sort();
            if builtins != case.host_builtins {
                failures.push(format!(
                    "{} ({how}): builtins() lists {builtins:?}, expected {:?}",
                    case.name, case.host_builtins
                ));
            }
            for (i, (want, got)) in expected.iter().zip(&run.outcomes).enumerate() {
                compared += 1;
                if !want.agrees(got) {
                    failures.push(format!(
                        "{} ({how}) case {i} {} input {}:\n  native: {want:?}\n  sdk:    {got:?}",
                        case.name,
                        case.evals[i].entrypoint,
                        case.evals[i]
                            .input
                            .as_ref()
                            .map_or("none".to_string(), |v| v.to_string()),
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} evaluations disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Error cases must really be errors on both sides, and results really
/// results: the table is not vacuously equal.
#[test]
fn native_column_has_results_and_errors() {
    let all: Vec<Outcome> = table().iter().flat_map(native).collect();
    let errors = all
        .iter()
        .filter(|o| matches!(o, Outcome::Error(_)))
        .count();
    let undefined = all
        .iter()
        .filter(|o| matches!(o, Outcome::Result(r) if r == &json!([])))
        .count();
    assert!((2..12).contains(&errors), "{errors} errors");
    assert!(undefined >= 2, "{undefined} undefined results");
}

type Imports = Vec<(String, String, wasmparser::TypeRef)>;
type Exports = Vec<(String, wasmparser::ExternalKind)>;

fn imports_and_exports(wasm: &[u8]) -> (Imports, Exports) {
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            wasmparser::Payload::ImportSection(s) => {
                for imp in s.into_imports() {
                    let imp = imp.unwrap();
                    imports.push((imp.module.to_string(), imp.name.to_string(), imp.ty));
                }
            }
            wasmparser::Payload::ExportSection(s) => {
                for e in s {
                    let e = e.unwrap();
                    exports.push((e.name.to_string(), e.kind));
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

/// The module is small, valid, and has exactly the imports and exports of
/// OPA's ABI that the SDK links against.
#[test]
fn modules_are_small_valid_and_abi_shaped() {
    let mut validator = wasmparser::Validator::new();
    validator
        .validate_all(RUNTIME_WASM)
        .expect("the runtime validates");
    for case in table() {
        let wasm = build(&case, true);
        assert!(
            wasm.len() <= MAX_COMPILED_SIZE,
            "{}: module is {} bytes",
            case.name,
            wasm.len()
        );
        wasmparser::Validator::new()
            .validate_all(&wasm)
            .unwrap_or_else(|e| panic!("{}: invalid module: {e}", case.name));

        let (imports, exports) = imports_and_exports(&wasm);
        let allowed = [
            "opa_abort",
            "opa_println",
            "opa_builtin0",
            "opa_builtin1",
            "opa_builtin2",
            "opa_builtin3",
            "opa_builtin4",
        ];
        for (module, name, ty) in &imports {
            assert_eq!(module, "env", "{}: import {module}.{name}", case.name);
            match ty {
                wasmparser::TypeRef::Memory(m) => {
                    assert_eq!(name, "memory");
                    assert!(
                        m.initial <= 5,
                        "{}: memory minimum {} pages",
                        case.name,
                        m.initial
                    );
                    assert_eq!(m.maximum, None, "{}: memory has a maximum", case.name);
                }
                wasmparser::TypeRef::Func(_) => {
                    assert!(
                        allowed.contains(&name.as_str()),
                        "{}: import env.{name}",
                        case.name
                    )
                }
                other => panic!("{}: import env.{name}: {other:?}", case.name),
            }
        }
        assert!(
            imports.iter().any(|(_, n, _)| n == "memory"),
            "{}: no env.memory import",
            case.name
        );

        let abi = [
            "builtins",
            "entrypoints",
            "opa_malloc",
            "opa_free",
            "opa_json_parse",
            "opa_value_parse",
            "opa_json_dump",
            "opa_value_dump",
            "opa_heap_ptr_get",
            "opa_heap_ptr_set",
            "opa_value_add_path",
            "opa_value_remove_path",
            "opa_eval_ctx_new",
            "opa_eval_ctx_set_input",
            "opa_eval_ctx_set_data",
            "opa_eval_ctx_set_entrypoint",
            "opa_eval_ctx_get_result",
            "eval",
            "opa_eval",
        ];
        for name in abi {
            assert!(
                exports
                    .iter()
                    .any(|(n, k)| n == name && *k == wasmparser::ExternalKind::Func),
                "{}: no exported function {name}",
                case.name
            );
        }
        // And no other function: the runtime's own (its `memcmp`, its
        // operations) stay inside.
        for (name, kind) in &exports {
            if *kind == wasmparser::ExternalKind::Func {
                assert!(
                    abi.contains(&name.as_str()),
                    "{}: exports {name}",
                    case.name
                );
            }
        }
        for name in ["opa_wasm_abi_version", "opa_wasm_abi_minor_version"] {
            assert!(
                exports
                    .iter()
                    .any(|(n, k)| n == name && *k == wasmparser::ExternalKind::Global),
                "{}: no exported global {name}",
                case.name
            );
        }
    }
}

/// The SDK reads the ABI version globals and entrypoint names the module
/// exports.
#[test]
fn sdk_sees_abi_version_and_entrypoints() {
    let case = table().into_iter().find(|c| c.name == "allow").unwrap();
    let run = sdk(&case, &build(&case, true), SdkMode::default(), "abi");
    assert_eq!(
        run.entrypoints,
        json!({"example/allow": 0, "example/deny": 1})
    );

    // Without entrypoints, every rule is one.
    let mut all = case.clone();
    all.entrypoints.clear();
    all.evals.truncate(1);
    let run = sdk(&all, &build(&all, true), SdkMode::default(), "all-rules");
    assert_eq!(
        run.entrypoints,
        json!({"example/allow": 0, "example/deny": 1})
    );
}

fn build_error(modules: &[(&str, &str)], data: Json, entrypoints: &[&str]) -> String {
    let input = BuildInput {
        modules: modules
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        data,
        entrypoints: entrypoints.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    match build_module(&input) {
        Ok(_) => panic!("build of {modules:?} succeeded"),
        Err(e) => {
            assert_eq!(e.kind(), wasmlayer_core::ErrorKind::Policy, "{e}");
            e.to_string()
        }
    }
}

/// Bad policies fail at build time, with regorus's file:line:col messages.
#[test]
fn build_errors_are_clear() {
    let ok = "package example\nimport rego.v1\nallow if input.user == \"alice\"\nf(x) := x + 1\n";

    let syntax = build_error(
        &[
            ("ok.rego", ok),
            (
                "broken.rego",
                "package broken\nimport rego.v1\n\nallow if {\n  input.x ==\n",
            ),
        ],
        Json::Null,
        &["example/allow"],
    );
    assert!(syntax.contains("broken.rego:"), "{syntax}");
    assert!(syntax.contains("error"), "{syntax}");

    let unknown = build_error(&[("ok.rego", ok)], Json::Null, &["example/deny"]);
    assert!(
        unknown.contains("unknown entrypoint `example/deny`"),
        "{unknown}"
    );
    assert!(
        unknown.contains("example/allow"),
        "lists the rules there are: {unknown}"
    );

    let function = build_error(&[("ok.rego", ok)], Json::Null, &["data.example.f"]);
    assert!(function.contains("names a function"), "{function}");

    let data = build_error(&[("ok.rego", ok)], json!([1, 2]), &["example/allow"]);
    assert!(data.contains("data must be a JSON object"), "{data}");

    let empty = build_error(&[], Json::Null, &[]);
    assert!(empty.contains("no Rego modules"), "{empty}");

    let unsafe_var = build_error(
        &[(
            "unsafe.rego",
            "package u\nimport rego.v1\nallow if x == 1\n",
        )],
        Json::Null,
        &["u/allow"],
    );
    assert!(unsafe_var.contains("unsafe.rego:3:"), "{unsafe_var}");
}

/// What the compiler does not support fails with the construct and where it
/// is, and `--interpreter` builds it; the two modules agree where both build.
#[test]
fn unsupported_constructs_name_the_place_and_the_interpreter_builds_them() {
    // Iterating over the rules of a package (`data.p[name]`).
    let rules = "package p\nimport rego.v1\n\na := 1\n\nb := 2\n";
    let rego = "package q\nimport rego.v1\n\nnames contains name if {\n\tsome name\n\tdata.p[name] == 1\n}\n";
    let modules = [("p.rego", rules), ("rules.rego", rego)];
    let msg = build_error(&modules, Json::Null, &["q/names"]);
    assert!(msg.contains("rules.rego:6:"), "{msg}");
    assert!(msg.contains("iterating over rules"), "{msg}");
    assert!(msg.contains("--interpreter"), "{msg}");

    let wasm = build_module(&BuildInput {
        modules: vec![
            ("p.rego".into(), rules.into()),
            ("rules.rego".into(), rego.into()),
        ],
        entrypoints: vec!["q/names".into()],
        interpreter: true,
        ..Default::default()
    })
    .expect("the interpreter module builds");
    let mut opa = bare_host::Opa::new(&wasm);
    let data = opa.json("{}");
    let heap: i32 = opa.call("opa_heap_ptr_get", ()).unwrap();
    assert_eq!(
        opa.eval(0, data, heap, None).unwrap(),
        r#"[{"result":["a"]}]"#
    );
}

/// Only what a policy calls is linked in: a policy without builtins is
/// smaller than one calling sprintf, and neither exports the runtime's
/// internal functions.
#[test]
fn compiled_modules_carry_only_what_the_policy_calls() {
    let build = |rego: &str| {
        build_module(&BuildInput {
            modules: vec![("p.rego".into(), rego.into())],
            entrypoints: vec!["p/r".into()],
            ..Default::default()
        })
        .unwrap()
    };
    let bare = build("package p\nimport rego.v1\nr if input.user == \"alice\"\n");
    let fmt = build("package p\nimport rego.v1\nr := sprintf(\"%v and %d\", [input.user, 3])\n");
    assert!(
        bare.len() + 2048 < fmt.len(),
        "sprintf adds code: {} vs {} bytes",
        bare.len(),
        fmt.len()
    );
    assert!(
        fmt.len() < bare.len() + 60 * 1024,
        "{} vs {}",
        fmt.len(),
        bare.len()
    );
    for wasm in [&bare, &fmt] {
        let (_, exports) = imports_and_exports(wasm);
        for (name, _) in exports {
            assert!(
                !name.starts_with("rt_") && !name.starts_with("builtin:"),
                "exports {name}"
            );
        }
    }
}

/// A minimal OPA host on Wasmtime, for the ABI functions the SDK does not
/// call (value text, paths, the context API used directly) and for memory
/// behaviour across evaluations.
mod bare_host {
    use wasmtime::{
        Caller, Engine, Instance, Linker, Memory, MemoryType, Module, Store, WasmParams,
        WasmResults,
    };

    #[derive(Default)]
    pub struct Host {
        pub printed: Vec<String>,
        pub builtin_calls: Vec<i32>,
    }

    pub struct Opa {
        pub store: Store<Host>,
        instance: Instance,
        pub memory: Memory,
    }

    fn cstr(bytes: &[u8], addr: i32) -> String {
        let s = &bytes[addr as usize..];
        let end = s
            .iter()
            .position(|b| *b == 0)
            .expect("NUL-terminated string");
        String::from_utf8(s[..end].to_vec()).unwrap()
    }

    /// Calls an export from inside a host function.
    fn call_back<P: WasmParams, R: WasmResults>(
        c: &mut Caller<'_, Host>,
        name: &str,
        p: P,
    ) -> wasmtime::Result<R> {
        let f = c.get_export(name).and_then(|e| e.into_func()).expect(name);
        f.typed::<P, R>(&*c)?.call(&mut *c, p)
    }

    impl Opa {
        /// Instantiates `wasm` with a 5-page memory, as OPA's SDKs do. The
        /// host implements one builtin, whatever its id: it returns the
        /// number 1700000000000000000 (a fixed `time.now_ns()`).
        pub fn new(wasm: &[u8]) -> Opa {
            let engine = Engine::default();
            let module = Module::new(&engine, wasm).unwrap();
            let mut store = Store::new(&engine, Host::default());
            let memory = Memory::new(&mut store, MemoryType::new(5, None)).unwrap();
            let mut linker = Linker::new(&engine);
            linker.define(&store, "env", "memory", memory).unwrap();
            linker
                .func_wrap(
                    "env",
                    "opa_abort",
                    move |c: Caller<'_, Host>, addr: i32| -> wasmtime::Result<()> {
                        Err(wasmtime::Error::msg(format!(
                            "opa_abort: {}",
                            cstr(memory.data(&c), addr)
                        )))
                    },
                )
                .unwrap();
            linker
                .func_wrap(
                    "env",
                    "opa_println",
                    move |mut c: Caller<'_, Host>, addr: i32| {
                        let s = cstr(memory.data(&c), addr);
                        c.data_mut().printed.push(s);
                    },
                )
                .unwrap();
            linker
                .func_wrap(
                    "env",
                    "opa_builtin0",
                    move |mut c: Caller<'_, Host>, id: i32, _ctx: i32| -> wasmtime::Result<i32> {
                        c.data_mut().builtin_calls.push(id);
                        let text = b"1700000000000000000";
                        let addr: i32 = call_back(&mut c, "opa_malloc", text.len() as i32)?;
                        memory.write(&mut c, addr as usize, text)?;
                        call_back(&mut c, "opa_json_parse", (addr, text.len() as i32))
                    },
                )
                .unwrap();
            for (name, n) in [
                ("opa_builtin1", 1),
                ("opa_builtin2", 2),
                ("opa_builtin3", 3),
                ("opa_builtin4", 4),
            ] {
                let ty = wasmtime::FuncType::new(
                    &engine,
                    std::iter::repeat_n(wasmtime::ValType::I32, n + 2),
                    [wasmtime::ValType::I32],
                );
                linker
                    .func_new("env", name, ty, |_, _, _| {
                        Err(wasmtime::Error::msg("no such builtin"))
                    })
                    .unwrap();
            }
            let instance = linker.instantiate(&mut store, &module).unwrap();
            Opa {
                store,
                instance,
                memory,
            }
        }

        pub fn call<P: WasmParams, R: WasmResults>(
            &mut self,
            name: &str,
            p: P,
        ) -> wasmtime::Result<R> {
            self.instance
                .get_typed_func::<P, R>(&mut self.store, name)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .call(&mut self.store, p)
        }

        pub fn write(&mut self, bytes: &[u8]) -> i32 {
            let addr: i32 = self.call("opa_malloc", bytes.len() as i32).unwrap();
            self.memory
                .write(&mut self.store, addr as usize, bytes)
                .unwrap();
            addr
        }

        pub fn cstr(&self, addr: i32) -> String {
            cstr(self.memory.data(&self.store), addr)
        }

        pub fn json(&mut self, text: &str) -> i32 {
            let addr = self.write(text.as_bytes());
            self.call("opa_json_parse", (addr, text.len() as i32))
                .unwrap()
        }

        pub fn value(&mut self, text: &str) -> i32 {
            let addr = self.write(text.as_bytes());
            self.call("opa_value_parse", (addr, text.len() as i32))
                .unwrap()
        }

        pub fn dump(&mut self, v: i32) -> String {
            let s: i32 = self.call("opa_json_dump", v).unwrap();
            self.cstr(s)
        }

        pub fn value_dump(&mut self, v: i32) -> String {
            let s: i32 = self.call("opa_value_dump", v).unwrap();
            self.cstr(s)
        }

        /// ABI 1.2's `opa_eval`, as the SDK calls it: input text written at
        /// `heap`, the heap restarting after it.
        pub fn eval(
            &mut self,
            entrypoint: i32,
            data: i32,
            heap: i32,
            input: Option<&str>,
        ) -> wasmtime::Result<String> {
            self.eval_bytes(entrypoint, data, heap, input.map(str::as_bytes))
        }

        /// [`Opa::eval`] on input bytes that need not be UTF-8.
        pub fn eval_bytes(
            &mut self,
            entrypoint: i32,
            data: i32,
            heap: i32,
            input: Option<&[u8]>,
        ) -> wasmtime::Result<String> {
            let input = input.unwrap_or(b"");
            let end = heap as usize + input.len();
            let have = self.memory.data_size(&self.store);
            if end > have {
                self.memory
                    .grow(&mut self.store, (end - have).div_ceil(65536) as u64)
                    .unwrap();
            }
            self.memory
                .write(&mut self.store, heap as usize, input)
                .unwrap();
            let r: i32 = self.call(
                "opa_eval",
                (
                    0,
                    entrypoint,
                    data,
                    heap,
                    input.len() as i32,
                    heap + input.len() as i32,
                    0,
                ),
            )?;
            Ok(self.cstr(r))
        }
    }
}

const BARE_POLICY: &str = r#"package t

import rego.v1

now := time.now_ns()

greet := msg if {
	print("hello from", input.name)
	msg := sprintf("hi %s", [input.name])
}

items := count(input.items)

boom := 1 / input.zero

limits := data.limits
"#;

fn bare_module() -> Vec<u8> {
    build_module(&BuildInput {
        modules: vec![("t.rego".into(), BARE_POLICY.into())],
        data: json!({"limits": {"max": 3}}),
        entrypoints: vec![
            "t/now".into(),
            "t/greet".into(),
            "t/items".into(),
            "t/boom".into(),
            "t/limits".into(),
        ],
        ..Default::default()
    })
    .unwrap()
}

/// Values as text both ways, and paths, as OPA's ABI defines them.
#[test]
fn abi_value_functions() {
    let mut opa = bare_host::Opa::new(&bare_module());

    let v = opa.json(r#"{"b": [1, 2.5, "x"], "a": null, "c": {"d": true}}"#);
    assert_ne!(v, 0);
    assert_eq!(opa.dump(v), r#"{"a":null,"b":[1,2.5,"x"],"c":{"d":true}}"#);

    let bad = opa.write(b"{\"a\": ");
    let r: i32 = opa.call("opa_json_parse", (bad, 6)).unwrap();
    assert_eq!(r, 0, "malformed JSON parses to 0");

    let set = opa.value(r#"{1, "a", [2]}"#);
    assert_ne!(set, 0);
    assert_eq!(opa.value_dump(set), r#"{1,"a",[2]}"#);
    assert_eq!(opa.dump(set), r#"[1,"a",[2]]"#);
    let empty = opa.value("set()");
    assert_eq!(opa.value_dump(empty), "set()");
    let keyed = opa.value(r#"{1: "one", "k": {2, 3}}"#);
    assert_eq!(opa.value_dump(keyed), r#"{1:"one","k":{2,3}}"#);
    let bad = opa.write(b"{1, ");
    let r: i32 = opa.call("opa_value_parse", (bad, 4)).unwrap();
    assert_eq!(r, 0, "malformed value text parses to 0");

    let base = opa.json("{}");
    let path = opa.json(r#"["a", "b"]"#);
    let five = opa.json("5");
    let rc: i32 = opa.call("opa_value_add_path", (base, path, five)).unwrap();
    assert_eq!(rc, 0);
    let path2 = opa.json(r#"["a", "c"]"#);
    let rc: i32 = opa.call("opa_value_add_path", (base, path2, five)).unwrap();
    assert_eq!(rc, 0);
    assert_eq!(opa.dump(base), r#"{"a":{"b":5,"c":5}}"#);
    let rc: i32 = opa.call("opa_value_remove_path", (base, path)).unwrap();
    assert_eq!(rc, 0);
    assert_eq!(opa.dump(base), r#"{"a":{"c":5}}"#);
    let into_number = opa.json(r#"["a", "c", "x"]"#);
    let rc: i32 = opa
        .call("opa_value_add_path", (base, into_number, five))
        .unwrap();
    assert_ne!(rc, 0, "a path through a number is an error");
}

/// The context API used directly, delegated builtins, print, aborts, and
/// a heap that hosts reset between evaluations: big inputs grow memory once,
/// not once per evaluation.
#[test]
fn abi_evaluation_on_a_bare_host() {
    let mut opa = bare_host::Opa::new(&bare_module());

    let builtins: i32 = opa.call("builtins", ()).unwrap();
    assert_eq!(opa.dump(builtins), r#"{"time.now_ns":0}"#);
    let entrypoints: i32 = opa.call("entrypoints", ()).unwrap();
    assert_eq!(
        opa.dump(entrypoints),
        r#"{"t/boom":3,"t/greet":1,"t/items":2,"t/limits":4,"t/now":0}"#
    );

    // Context API.
    let data = opa.json("{}");
    let input = opa.json(r#"{"name": "alice"}"#);
    let ctx: i32 = opa.call("opa_eval_ctx_new", ()).unwrap();
    opa.call::<(i32, i32), ()>("opa_eval_ctx_set_input", (ctx, input))
        .unwrap();
    opa.call::<(i32, i32), ()>("opa_eval_ctx_set_data", (ctx, data))
        .unwrap();
    opa.call::<(i32, i32), ()>("opa_eval_ctx_set_entrypoint", (ctx, 1))
        .unwrap();
    let rc: i32 = opa.call("eval", ctx).unwrap();
    assert_eq!(rc, 0);
    let result: i32 = opa.call("opa_eval_ctx_get_result", ctx).unwrap();
    assert_eq!(opa.dump(result), r#"[{"result":"hi alice"}]"#);
    assert_eq!(
        opa.store.data().printed,
        vec!["hello from alice".to_string()]
    );

    // opa_eval, with the heap reset to the same point every time.
    let heap: i32 = opa.call("opa_heap_ptr_get", ()).unwrap();
    assert_eq!(
        opa.eval(0, data, heap, None).unwrap(),
        r#"[{"result":1700000000000000000}]"#
    );
    assert_eq!(opa.store.data().builtin_calls, vec![0]);

    let before = opa.memory.size(&opa.store);
    let big = json!({ "items": (0..100_000).collect::<Vec<u32>>() }).to_string();
    assert_eq!(
        opa.eval(2, data, heap, Some(&big)).unwrap(),
        r#"[{"result":100000}]"#
    );
    let pages = opa.memory.size(&opa.store);
    assert!(
        pages > before,
        "memory grew for a big input ({before} -> {pages} pages)"
    );
    for _ in 0..10 {
        assert_eq!(
            opa.eval(2, data, heap, Some(&big)).unwrap(),
            r#"[{"result":100000}]"#
        );
    }
    assert_eq!(
        opa.memory.size(&opa.store),
        pages,
        "the heap is reused across evaluations"
    );

    // Errors abort with regorus's message; the instance stays usable.
    let err = opa.eval(3, data, heap, Some(r#"{"zero": 0}"#)).unwrap_err();
    assert!(format!("{err:?}").contains("divide by zero"), "{err:?}");
    assert_eq!(
        opa.eval(2, data, heap, Some(r#"{"items": [1, 2]}"#))
            .unwrap(),
        r#"[{"result":2}]"#
    );
    let err = opa.eval(9, data, heap, None).unwrap_err();
    assert!(
        format!("{err:?}").contains("unknown entrypoint id 9"),
        "{err:?}"
    );

    // Host data is merged over the data compiled in; the host's wins.
    assert_eq!(
        opa.eval(4, data, heap, None).unwrap(),
        r#"[{"result":{"max":3}}]"#
    );
    let host_data = opa.json(r#"{"limits": {"min": 1}}"#);
    let heap2: i32 = opa.call("opa_heap_ptr_get", ()).unwrap();
    assert_eq!(
        opa.eval(4, host_data, heap2, None).unwrap(),
        r#"[{"result":{"max":3,"min":1}}]"#
    );
    let host_data = opa.json(r#"{"limits": {"max": 9}}"#);
    let heap3: i32 = opa.call("opa_heap_ptr_get", ()).unwrap();
    assert_eq!(
        opa.eval(4, host_data, heap3, None).unwrap(),
        r#"[{"result":{"max":9}}]"#
    );
}

/// The runtime's 1 MiB stack holds long chains of rules and deeply nested
/// input.
#[test]
fn deep_policies_fit_the_stack() {
    let mut rego = String::from("package deep\n\nimport rego.v1\n\nr0 := input.x\n");
    let n = 150;
    for i in 1..=n {
        rego.push_str(&format!("r{i} := r{} + 1\n", i - 1));
    }
    rego.push_str("depth := count([p | walk(input.nested, [p, _])])\n");
    let wasm = build_module(&BuildInput {
        modules: vec![("deep.rego".into(), rego)],
        data: Json::Null,
        entrypoints: vec![format!("deep/r{n}"), "deep/depth".into()],
        ..Default::default()
    })
    .unwrap();
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!({ "n": nested });
    }
    let input = json!({"x": 1, "nested": nested}).to_string();

    let mut opa = bare_host::Opa::new(&wasm);
    let data = opa.json("{}");
    let heap: i32 = opa.call("opa_heap_ptr_get", ()).unwrap();
    assert_eq!(
        opa.eval(1, data, heap, Some(&input)).unwrap(),
        r#"[{"result":101}]"#
    );
    assert_eq!(
        opa.eval(0, data, heap, Some(&input)).unwrap(),
        format!(r#"[{{"result":{}}}]"#, n + 1)
    );
}

/// `opa_eval` reads its input lazily (validated whole, each level read when
/// looked at): every input comes back as regorus reads it, whichever parts
/// the policy looks at first, and malformed or too deeply nested input is
/// an error however little of it the policy reads.
#[test]
fn lazily_read_input_is_read_as_regorus_reads_it() {
    let rego = "package j\nimport rego.v1\nall := input\nfirst := input[0]\nkeys := {k | some k, _ in input}\ndeep := input.a.b\n";
    let wasm = build_module(&BuildInput {
        modules: vec![("j.rego".into(), rego.into())],
        entrypoints: vec![
            "j/all".into(),
            "j/first".into(),
            "j/keys".into(),
            "j/deep".into(),
        ],
        ..Default::default()
    })
    .unwrap();
    let mut deep = String::new();
    for _ in 0..100 {
        deep.push('[');
    }
    for _ in 0..100 {
        deep.push(']');
    }
    // Objects past the size the runtime sorts by insertion (32 entries),
    // keys in reverse order and one twice, at the top and one level down.
    let many: Vec<String> = (0..40)
        .rev()
        .map(|n| format!(r#""k{n:02}": {n}"#))
        .chain([r#""k05": "again""#.to_string()])
        .collect();
    let many = many.join(", ");
    let inputs = [
        format!(r#"{{{many}, "a": {{"b": {{{many}}}}}}}"#),
        r#"{"b": 1, "a": {"b": [1, 2.5, -0, 1e3, "x\"y\\u00e9\ud83d\ude00", null, true, false, {}, []]}}"#.to_string(),
        r#"[{"z": 1, "a": [[], {"k": "v"}]}, 2, "three"]"#.to_string(),
        r#"{"k": 1, "k": 2, "a": {"b": {"c": [1, {"d": "\n\t"}]}}}"#.to_string(),
        r#"  {"a" : { "b" : [ 1 , 2 ] } , "c" : 1234567890123456789 }  "#.to_string(),
        r#"{"a": {"b": 123456789012345678}}"#.to_string(),
        r#""just a string""#.to_string(),
        "42".to_string(),
        deep,
    ];
    // regorus's answer (None: an error).
    let engine = |text: &str, rule: &str| -> Option<Json> {
        let mut e = regorus::Engine::new();
        e.add_policy("j.rego".into(), rego.into()).unwrap();
        e.set_input(regorus::Value::from_json_str(text).unwrap());
        Some(match e.eval_rule(format!("data.j.{rule}")).ok()? {
            regorus::Value::Undefined => json!([]),
            v => {
                json!([{"result": serde_json::from_str::<Json>(&v.to_json_str().unwrap()).unwrap()}])
            }
        })
    };
    let mut compared = 0;
    for text in &inputs {
        for (id, rule) in ["all", "first", "keys", "deep"].iter().enumerate() {
            let mut opa = bare_host::Opa::new(&wasm);
            let data = opa.json("{}");
            let heap: i32 = opa.call("opa_heap_ptr_get", ()).unwrap();
            let got = opa
                .eval(id as i32, data, heap, Some(text))
                .ok()
                .map(|s| serde_json::from_str::<Json>(&s).unwrap());
            assert_eq!(got, engine(text, rule), "{rule} of {text}");
            // The same instance again, reading the whole input first.
            let all = opa
                .eval(0, data, heap, Some(text))
                .ok()
                .map(|s| serde_json::from_str::<Json>(&s).unwrap());
            assert_eq!(all, engine(text, "all"), "{text}");
            compared += 1;
        }
    }
    assert_eq!(compared, 36);
    let mut too_deep = String::new();
    for _ in 0..200 {
        too_deep.push('[');
    }
    for _ in 0..200 {
        too_deep.push(']');
    }
    for bad in [
        r#"{"a": 1,}"#,
        r#"{"a": [1, 2}"#,
        r#"{"a": "unterminated}"#,
        r#"{"a": 1} x"#,
        r#"{"a": 01}"#,
        r#"{"a": "\ud800"}"#,
        r#"{"a": 1e999}"#,
        too_deep.as_str(),
    ] {
        // `deep` reads only input.a.b: the rest is still checked.
        let mut opa = bare_host::Opa::new(&wasm);
        let data = opa.json("{}");
        let heap: i32 = opa.call("opa_heap_ptr_get", ()).unwrap();
        let err = opa.eval(3, data, heap, Some(bad)).unwrap_err();
        assert!(
            format!("{err:?}").contains("not valid JSON"),
            "{bad}: {err:?}"
        );
    }
}

/// JSON input, valid and damaged, through a compiled module's `opa_eval`:
/// accepted exactly when serde_json (which regorus parses with) accepts it,
/// and then read as the same value. Inputs are made by a seeded generator:
/// random documents, written compact or pretty, half of them then damaged
/// by one byte inserted, removed or replaced (ASCII or not); and a few
/// fixed ones, valid and invalid UTF-8.
#[test]
fn input_is_accepted_exactly_when_it_is_json() {
    let rego = "package j\nimport rego.v1\nall := input\n";
    let wasm = build_module(&BuildInput {
        modules: vec![("j.rego".into(), rego.into())],
        entrypoints: vec!["j/all".into()],
        ..Default::default()
    })
    .unwrap();
    let mut opa = bare_host::Opa::new(&wasm);
    let data = opa.json("{}");
    let heap: i32 = opa.call("opa_heap_ptr_get", ()).unwrap();

    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    fn doc(next: &mut impl FnMut(u64) -> u64, depth: u32) -> Json {
        let strings = [
            "",
            "a",
            "ключ",
            "x\"y",
            "back\\slash",
            "tab\t",
            "😀",
            "\u{1}",
            "long string of text",
        ];
        match if depth == 0 { next(4) } else { next(7) } {
            0 => json!(null),
            1 => json!(next(2) == 0),
            2 => match next(3) {
                0 => json!(next(1000) as i64 - 500),
                1 => json!((next(1000) as f64) / 8.0),
                _ => json!(-(next(1 << 40) as i64)),
            },
            3 => json!(strings[next(strings.len() as u64) as usize]),
            4 | 5 => Json::Array((0..next(4)).map(|_| doc(next, depth - 1)).collect()),
            _ => Json::Object(
                (0..next(4))
                    .map(|_| {
                        let k = strings[next(strings.len() as u64) as usize].to_string();
                        (k, doc(next, depth - 1))
                    })
                    .collect(),
            ),
        }
    }
    // Bytes past ASCII too: lone continuation bytes, cut or overlong
    // sequences, an encoded surrogate's first byte, bytes UTF-8 never has.
    let noise =
        b"{}[]\",:\\ 0123456789abcdeflnrtu-+.E\x01\x7f\x80\xbf\xc0\xc3\xe0\xed\xf0\xf4\xf5\xff";
    // UTF-8 in and out of strings, before and past eight bytes into them.
    let fixed: [&[u8]; 14] = [
        b"{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
        b"{\"\xc3\xa9\":1,\"abcdefghij\xc3\xa9klmnopqrstuvwxyz\":2}",
        b"{\"a\":\"\xc3\"}",
        b"{\"a\":\"\xc0\x80\"}",
        b"{\"a\":\"\xed\xa0\x80\"}",
        b"{\"a\":\"\xf4\x90\x80\x80\"}",
        b"{\"a\":\"\xff\"}",
        b"{\"a\":\"abcdefghij\x80klmnop\"}",
        b"{\"a\":\"abcdefgh\xe2\x82\"}",
        b"{\"a\":1}\xc3\xa9",
        b"\xef\xbb\xbf{}",
        b"{\"a\":\xc3\xa9}",
        b"[\"\\u00e9\xc3\xa9\\n\"]",
        b"[\"\\n\xc3\"]",
    ];
    let (mut accepted, mut refused) = (0, 0);
    for n in 0..3000 + fixed.len() {
        let d = doc(&mut next, 4);
        let mut text = if let Some(t) = fixed.get(n) {
            t.to_vec()
        } else if next(2) == 0 {
            serde_json::to_vec(&d).unwrap()
        } else {
            serde_json::to_vec_pretty(&d).unwrap()
        };
        if n >= fixed.len() && next(2) == 0 && !text.is_empty() {
            let at = next(text.len() as u64) as usize;
            let b = noise[next(noise.len() as u64) as usize];
            match next(3) {
                0 => text.insert(at, b),
                1 => {
                    text.remove(at);
                }
                _ => text[at] = b,
            }
        }
        let want = serde_json::from_slice::<Json>(&text).ok();
        let got = opa.eval_bytes(0, data, heap, Some(&text));
        let text = String::from_utf8_lossy(&text);
        match (&want, got) {
            (Some(_), Ok(out)) => {
                // Numbers by value: regorus writes 47.0 as 47.
                fn by_value(v: &Json) -> Json {
                    match v {
                        Json::Number(n) => json!(n.as_f64().unwrap()),
                        Json::Array(a) => Json::Array(a.iter().map(by_value).collect()),
                        Json::Object(o) => {
                            Json::Object(o.iter().map(|(k, v)| (k.clone(), by_value(v))).collect())
                        }
                        other => other.clone(),
                    }
                }
                // As regorus writes the input back (its floats take a trip
                // through their decimal text: 7287867935E74 is written as
                // 7.287867935000001e+83).
                let regorus: Json = serde_json::from_str(
                    &regorus::Value::from_json_str(&text)
                        .unwrap()
                        .to_json_str()
                        .unwrap(),
                )
                .unwrap();
                let out: Json = serde_json::from_str(&out).unwrap();
                assert_eq!(
                    by_value(&out),
                    by_value(&json!([{"result": regorus}])),
                    "{text}"
                );
                accepted += 1;
            }
            (None, Err(e)) => {
                assert!(format!("{e:?}").contains("not valid JSON"), "{text}: {e:?}");
                refused += 1;
            }
            (Some(_), Err(e)) => panic!("valid JSON refused: {text}: {e:?}"),
            (None, Ok(out)) => panic!("invalid JSON accepted: {text:?} -> {out}"),
        }
    }
    assert!(
        accepted > 1000 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
}
