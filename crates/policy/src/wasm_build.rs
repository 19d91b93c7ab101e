//! `policy build`: Rego compiled into a self-contained Wasm module that
//! exports OPA's Wasm ABI (1.0–1.3), so that OPA-compatible hosts (OPA's SDKs,
//! Wasmlayer's own host) load and evaluate it.
//!
//! The module is [`RUNTIME_WASM`] — the regorus interpreter built for
//! wasm32-unknown-unknown behind the ABI (crates/policy-runtime, built by
//! this crate's build script) — with the policy linked in as a bundle:
//!
//! 1. [`build_module`] checks the policy natively with regorus first (parse
//!    errors, entrypoints that name no rule), so a bad policy fails here and
//!    not when a host loads the module.
//! 2. The bundle (JSON: Rego sources, data, entrypoints, builtins the policy
//!    calls) becomes a passive data segment. The runtime imports
//!    `wasmlayer.bundle_len` and `wasmlayer.bundle_copy`; linking turns those
//!    imports into defined functions (`i32.const LEN`; `memory.init`), so the
//!    final module has no imports beyond the ABI's `env` ones. A passive
//!    segment costs no memory at instantiation.
//! 3. The globals `opa_wasm_abi_version` (1) and `opa_wasm_abi_minor_version`
//!    (3) are added and exported.
//! 4. The module declares a small memory minimum (OPA's npm SDK gives 5
//!    pages) and grows memory to what the runtime's layout (1 MiB stack,
//!    static data) needs at start, copying its static data in itself.
//!
//! Builtins: the runtime has regorus's core builtins plus base64, base64url,
//! hex, semver, graph, json.patch and opa.runtime compiled in. Builtins the
//! policy calls that it lacks (regex.*, glob.*, time.*, yaml.*, net.*,
//! urlquery.*, uuid.*, rand.intn, crypto.*, io.jwt.*, ...) are delegated to
//! the host: the runtime lists them in `builtins()` and calls
//! `opa_builtinN` for them.

use std::collections::{BTreeMap, BTreeSet};

use regorus::unstable::{Expr, Lexer, Parser, Rule, RuleHead, TokenKind, BUILTINS};
use wasmlayer_core::Error;

/// The policy runtime: regorus behind OPA's Wasm ABI, built for
/// wasm32-unknown-unknown and shrunk with `wasm-opt -Os` by the build script.
pub const RUNTIME_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/policy-runtime.wasm"));

/// What a policy module is built from.
#[derive(Debug, Clone, Default)]
pub struct BuildInput {
    /// Rego modules: (file name, Rego text). Rego v1 unless `rego_v0`.
    pub modules: Vec<(String, String)>,
    /// Parse the modules as Rego v0 (see [`crate::Sources::rego_v0`]).
    pub rego_v0: bool,
    /// Data compiled into the module (merged data.json): an object, or null
    /// for none. Data a host sets is merged over it (the host's wins).
    pub data: serde_json::Value,
    /// Entrypoints, as `example/allow` or `data.example.allow`; a package
    /// (`example`) evaluates to the whole package. Empty: every rule of every
    /// package.
    pub entrypoints: Vec<String>,
    /// Build the interpreter module (regorus inside the module) instead of
    /// compiling the policy to Wasm code: for policies that use what the
    /// compiler does not support.
    pub interpreter: bool,
}

/// Builds the policy module: checks the policy natively, then links it into
/// [`RUNTIME_WASM`]. Errors are [`Error::Policy`].
pub fn build_module(input: &BuildInput) -> Result<Vec<u8>, Error> {
    let checked = check(input)?;
    if !input.interpreter {
        let entrypoints: Vec<(String, Vec<String>)> = checked
            .entrypoints
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.name.split('/').map(str::to_string).collect(),
                )
            })
            .collect();
        return crate::compile::compile(&checked.parsed, &input.data, &entrypoints);
    }
    let bundle = serde_json::json!({
        "modules": input.modules.iter().map(|(n, t)| [n, t]).collect::<Vec<_>>(),
        "rego_v0": input.rego_v0,
        "data": match &input.data {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            d => d.clone(),
        },
        "entrypoints": checked
            .entrypoints
            .iter()
            .map(|e| serde_json::json!([e.name, e.path, e.rule]))
            .collect::<Vec<_>>(),
        "builtins": checked
            .builtins
            .iter()
            .map(|(name, nargs)| serde_json::json!([name, nargs]))
            .collect::<Vec<_>>(),
    });
    let bundle = serde_json::to_vec(&bundle)
        .map_err(|e| Error::policy(format!("cannot encode the policy bundle: {e}")))?;
    link(RUNTIME_WASM, &bundle)
        .map_err(|e| Error::policy(format!("cannot link the policy module: {e:#}")))
}

/// An entrypoint as the runtime evaluates it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entrypoint {
    /// ABI name: `example/allow`.
    name: String,
    /// Data path: `data.example.allow`.
    path: String,
    /// A rule (`eval_rule`) rather than a package or other prefix (query).
    rule: bool,
}

struct Checked {
    /// The modules as regorus's parser read them, in the given order.
    parsed: Vec<regorus::unstable::Module>,
    entrypoints: Vec<Entrypoint>,
    /// Builtins the policy calls that a host may have to provide, with
    /// their arity; the runtime delegates those it lacks.
    builtins: BTreeMap<String, u8>,
}

/// OPA builtins that regorus does not implement, with their arity: a policy
/// may call them if its host provides them.
const HOST_ONLY_BUILTINS: &[(&str, u8)] = &[
    ("crypto.hmac.equal", 2),
    ("crypto.hmac.md5", 2),
    ("crypto.hmac.sha1", 2),
    ("crypto.hmac.sha256", 2),
    ("crypto.hmac.sha512", 2),
    ("crypto.md5", 1),
    ("crypto.sha1", 1),
    ("crypto.sha256", 1),
    ("crypto.parse_private_keys", 1),
    ("crypto.x509.parse_and_verify_certificates", 1),
    ("crypto.x509.parse_and_verify_certificates_with_options", 2),
    ("crypto.x509.parse_certificate_request", 1),
    ("crypto.x509.parse_certificates", 1),
    ("crypto.x509.parse_keypair", 2),
    ("crypto.x509.parse_rsa_private_key", 1),
    ("graphql.is_valid", 2),
    ("graphql.parse", 2),
    ("graphql.parse_and_verify", 2),
    ("graphql.parse_query", 1),
    ("graphql.parse_schema", 1),
    ("graphql.schema_is_valid", 1),
    ("http.send", 1),
    ("io.jwt.decode", 1),
    ("io.jwt.decode_verify", 2),
    ("io.jwt.encode_sign", 3),
    ("io.jwt.encode_sign_raw", 3),
    ("io.jwt.verify_eddsa", 2),
    ("io.jwt.verify_es256", 2),
    ("io.jwt.verify_es384", 2),
    ("io.jwt.verify_es512", 2),
    ("io.jwt.verify_hs256", 2),
    ("io.jwt.verify_hs384", 2),
    ("io.jwt.verify_hs512", 2),
    ("io.jwt.verify_ps256", 2),
    ("io.jwt.verify_ps384", 2),
    ("io.jwt.verify_ps512", 2),
    ("io.jwt.verify_rs256", 2),
    ("io.jwt.verify_rs384", 2),
    ("io.jwt.verify_rs512", 2),
    ("json.match_schema", 2),
    ("json.verify_schema", 1),
    ("net.cidr_contains_matches", 2),
    ("net.cidr_intersects", 2),
    ("net.cidr_merge", 1),
    ("net.lookup_ip_addr", 1),
    ("providers.aws.sign_req", 3),
    ("regex.globs_match", 2),
    ("rego.parse_module", 2),
    ("strings.render_template", 2),
];

/// The arity of a builtin a host could provide, if `name` is one.
pub(crate) fn builtin_arity(name: &str) -> Option<u8> {
    BUILTINS.get(name).map(|(_, n)| *n).or_else(|| {
        HOST_ONLY_BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    })
}

/// Checks the policy natively: regorus parses and prepares it, every
/// entrypoint names a rule or package, the data is an object.
fn check(input: &BuildInput) -> Result<Checked, Error> {
    if input.modules.is_empty() {
        return Err(Error::policy("no Rego modules to build"));
    }
    let data = match &input.data {
        serde_json::Value::Null => None,
        d @ serde_json::Value::Object(_) => Some(d),
        other => {
            return Err(Error::policy(format!(
                "data must be a JSON object, not {}",
                json_kind(other)
            )))
        }
    };

    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(input.rego_v0);
    for (name, text) in &input.modules {
        engine
            .add_policy(name.clone(), text.clone())
            .map_err(|e| Error::policy(format!("{e}")))?;
    }
    if let Some(d) = data {
        let v = regorus::Value::from_json_str(&d.to_string())
            .map_err(|e| Error::policy(format!("data: {e}")))?;
        engine
            .add_data(v)
            .map_err(|e| Error::policy(format!("data: {e}")))?;
    }

    let mut paths = Paths::default();
    let mut builtins = BTreeMap::new();
    let mut parsed = Vec::new();
    for (name, text) in &input.modules {
        let source = regorus::Source::from_contents(name.clone(), text.clone())
            .map_err(|e| Error::policy(format!("{e}")))?;
        let mut parser = Parser::new(&source).map_err(|e| Error::policy(format!("{e}")))?;
        if !input.rego_v0 {
            parser
                .enable_rego_v1()
                .map_err(|e| Error::policy(format!("{e}")))?;
        }
        let module = parser.parse().map_err(|e| Error::policy(format!("{e}")))?;
        paths.add_module(&module);
        scan_calls(&source, &mut builtins).map_err(|e| Error::policy(format!("{e}")))?;
        parsed.push(module);
    }

    // Builtins regorus lacks natively are stand-ins here, so that the
    // native check can prepare the policy.
    for (name, nargs) in &builtins {
        if !BUILTINS.contains_key(name.as_str()) {
            let name = name.clone();
            let msg = format!("{name} is provided by the host");
            engine
                .add_extension(
                    name,
                    *nargs,
                    Box::new(move |_: Vec<regorus::Value>| anyhow::bail!("{msg}")),
                )
                .map_err(|e| Error::policy(format!("{e}")))?;
        }
    }

    let entrypoints = if input.entrypoints.is_empty() {
        let all: Vec<Entrypoint> = paths
            .rules
            .iter()
            .map(|c| Entrypoint {
                name: c.join("/"),
                path: data_path(c),
                rule: true,
            })
            .collect();
        if all.is_empty() {
            return Err(Error::policy(
                "the policy has no rules to use as entrypoints",
            ));
        }
        all
    } else {
        let mut out: Vec<Entrypoint> = Vec::new();
        for e in &input.entrypoints {
            let ep = paths.resolve(e)?;
            if !out.iter().any(|o| o.name == ep.name) {
                out.push(ep);
            }
        }
        out
    };

    // Prepare natively (rule analysis), so that errors regorus finds only
    // then also fail the build.
    let prepare = entrypoints.iter().find(|e| e.rule).map(|e| e.path.clone());
    let prepared = match prepare {
        Some(path) => engine.compile_with_entrypoint(&path.into()).map(|_| ()),
        None => engine.eval_query("true".to_string(), false).map(|_| ()),
    };
    prepared.map_err(|e| Error::policy(format!("{e}")))?;

    Ok(Checked {
        parsed,
        entrypoints,
        builtins,
    })
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `data.a.b` for components `[a, b]`, with `["..."]` for components that
/// are not identifiers.
fn data_path(components: &[String]) -> String {
    let mut path = String::from("data");
    for c in components {
        let ident = c
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if ident {
            path.push('.');
            path.push_str(c);
        } else {
            path.push('[');
            path.push_str(&serde_json::Value::String(c.clone()).to_string());
            path.push(']');
        }
    }
    path
}

/// What the policy defines, as path components below `data`.
#[derive(Default)]
struct Paths {
    packages: BTreeSet<Vec<String>>,
    /// Full rule paths (partial set and object rules: the rule's own path).
    rules: BTreeSet<Vec<String>>,
    functions: BTreeSet<Vec<String>>,
}

impl Paths {
    fn add_module(&mut self, module: &regorus::unstable::Module) {
        let Some(pkg) = ref_components(&module.package.refr) else {
            return;
        };
        self.packages.insert(pkg.clone());
        for rule in &module.policy {
            let (refr, function) = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => (refr, false),
                    RuleHead::Func { refr, .. } => (refr, true),
                },
                Rule::Default { refr, args, .. } => (refr, !args.is_empty()),
            };
            if let Some(c) = ref_components(refr) {
                let mut path = pkg.clone();
                path.extend(c);
                if function {
                    self.functions.insert(path);
                } else {
                    self.rules.insert(path);
                }
            }
        }
    }

    /// Resolves an entrypoint as given (`a/b` or `data.a.b`).
    fn resolve(&self, given: &str) -> Result<Entrypoint, Error> {
        let trimmed = given.trim();
        let rest = trimmed
            .strip_prefix("data.")
            .or_else(|| trimmed.strip_prefix("data/"))
            .unwrap_or(trimmed);
        let components: Vec<String> = rest
            .split(['/', '.'])
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        if components.is_empty() || rest.chars().any(char::is_whitespace) {
            return Err(Error::policy(format!(
                "invalid entrypoint `{given}`: expected a rule path such as example/allow"
            )));
        }
        let ep = |rule| Entrypoint {
            name: components.join("/"),
            path: data_path(&components),
            rule,
        };
        if self.rules.contains(&components) {
            return Ok(ep(true));
        }
        if self.functions.contains(&components) {
            return Err(Error::policy(format!(
                "entrypoint `{given}` names a function, not a rule"
            )));
        }
        let is_prefix = |set: &BTreeSet<Vec<String>>| {
            set.iter()
                .any(|p| p.len() > components.len() && p.starts_with(&components))
        };
        if self.packages.contains(&components)
            || is_prefix(&self.packages)
            || is_prefix(&self.rules)
        {
            return Ok(ep(false));
        }
        let known: Vec<String> = self.rules.iter().map(|c| c.join("/")).collect();
        Err(Error::policy(format!(
            "unknown entrypoint `{given}`: the policy defines no rule {}{}",
            data_path(&components),
            if known.is_empty() {
                String::new()
            } else {
                format!(" (its rules: {})", known.join(", "))
            }
        )))
    }
}

/// Path components of a simple ref (`a.b["c"]`); a trailing variable index
/// (`x[k]` of a partial rule) is dropped.
fn ref_components(refr: &Expr) -> Option<Vec<String>> {
    match refr {
        Expr::Var { span, .. } => Some(vec![span.text().to_string()]),
        Expr::RefDot { refr, field, .. } => {
            let mut c = ref_components(refr)?;
            c.push(field.0.text().to_string());
            Some(c)
        }
        Expr::RefBrack { refr, index, .. } => {
            let mut c = ref_components(refr)?;
            if let Expr::String { value, .. } = index.as_ref() {
                c.push(value.as_string().ok()?.to_string());
            }
            Some(c)
        }
        _ => None,
    }
}

/// Finds calls (`a.b.c(`) of builtins a host could provide.
fn scan_calls(source: &regorus::Source, out: &mut BTreeMap<String, u8>) -> anyhow::Result<()> {
    let mut lexer = Lexer::new(source);
    let mut tokens = Vec::new();
    loop {
        let tok = lexer.next_token()?;
        if matches!(tok.0, TokenKind::Eof) {
            break;
        }
        tokens.push(tok);
    }
    let is_sym = |i: usize, s: &str| {
        tokens
            .get(i)
            .is_some_and(|t| matches!(t.0, TokenKind::Symbol) && t.1.text() == s)
    };
    let is_ident = |i: usize| {
        tokens
            .get(i)
            .is_some_and(|t| matches!(t.0, TokenKind::Ident))
    };
    let mut i = 0;
    while i < tokens.len() {
        if !is_ident(i) || (i > 0 && is_sym(i - 1, ".")) {
            i += 1;
            continue;
        }
        let mut name = tokens[i].1.text().to_string();
        let mut j = i + 1;
        while is_sym(j, ".") && is_ident(j + 1) {
            name.push('.');
            name.push_str(tokens[j + 1].1.text());
            j += 2;
        }
        if is_sym(j, "(") {
            if let Some(n) = builtin_arity(&name) {
                out.insert(name, n);
            }
        }
        i = j;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Linking the bundle into the runtime.

const BUNDLE_MODULE: &str = "wasmlayer";

/// The memory minimum the module declares. The runtime's static layout
/// (a 1 MiB stack first, then static data) needs more; the module grows the
/// memory it is given at instantiation (see [`link`]).
const DECLARED_MIN_PAGES: u64 = 2;

/// Links `bundle` into `runtime` with [`wasmlayer_wasm_embed::link`]:
///
/// - the bundle becomes a passive data segment, and the imports
///   `wasmlayer.bundle_len` / `wasmlayer.bundle_copy` functions that read it;
/// - the ABI version globals are added and exported;
/// - the memory import's minimum drops to [`DECLARED_MIN_PAGES`] (OPA's
///   SDKs give 5 pages): the runtime's active data segments become passive,
///   and a new start function grows memory to what the runtime's layout
///   needs, copies them in place, then runs the runtime's own start
///   function.
pub(crate) fn link(runtime: &[u8], bundle: &[u8]) -> anyhow::Result<Vec<u8>> {
    wasmlayer_wasm_embed::link(
        runtime,
        &wasmlayer_wasm_embed::Embed {
            import_module: BUNDLE_MODULE,
            len: "bundle_len",
            copy: "bundle_copy",
            data: bundle,
            shrink_memory: Some(wasmlayer_wasm_embed::MemoryShrink {
                declared_min_pages: DECLARED_MIN_PAGES,
            }),
            globals: &[
                ("opa_wasm_abi_version", 1),
                ("opa_wasm_abi_minor_version", 3),
            ],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rego: &str, entrypoints: &[&str]) -> BuildInput {
        BuildInput {
            modules: vec![("policy.rego".into(), rego.into())],
            data: serde_json::Value::Null,
            entrypoints: entrypoints.iter().map(|s| s.to_string()).collect(),
            interpreter: false,
            rego_v0: false,
        }
    }

    const EXAMPLE: &str = "package example\nimport rego.v1\ndefault allow := false\nallow if input.user == \"alice\"\n";

    #[test]
    fn module_validates_and_has_only_abi_imports() {
        let wasm = build_module(&input(EXAMPLE, &["example/allow"])).unwrap();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&wasm)
            .unwrap();
        for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
            if let wasmparser::Payload::ImportSection(s) = payload.unwrap() {
                for imp in s.into_imports() {
                    let imp = imp.unwrap();
                    assert_eq!(imp.module, "env", "{}", imp.name);
                }
            }
        }
    }

    #[test]
    fn entrypoints_resolve() {
        let all = check(&input(EXAMPLE, &[])).unwrap().entrypoints;
        assert_eq!(
            all,
            vec![Entrypoint {
                name: "example/allow".into(),
                path: "data.example.allow".into(),
                rule: true
            }]
        );
        let pkg = check(&input(EXAMPLE, &["data.example"]))
            .unwrap()
            .entrypoints;
        assert!(!pkg[0].rule);
        let err = check(&input(EXAMPLE, &["example/deny"]))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown entrypoint `example/deny`"), "{err}");
    }

    #[test]
    fn host_builtins_are_found() {
        let rego = "package p\nimport rego.v1\n# regex.split(\"x\", y)\nok if regex.match(\"a+\", input.s)\nn := count([1])\nt := time.now_ns()\n";
        let b = check(&input(rego, &[])).unwrap().builtins;
        assert_eq!(b.get("regex.match"), Some(&2));
        assert_eq!(b.get("time.now_ns"), Some(&0));
        assert!(
            !b.contains_key("regex.split"),
            "calls in comments do not count"
        );
    }
}
