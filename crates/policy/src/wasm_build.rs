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
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    ConstExpr, DataCountSection, DataSection, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, ImportSection, Instruction, Module, RawSection, SectionId,
    StartSection, ValType,
};
use wasmlayer_core::Error;

/// The policy runtime: regorus behind OPA's Wasm ABI, built for
/// wasm32-unknown-unknown and shrunk with `wasm-opt -Os` by the build script.
pub const RUNTIME_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/policy-runtime.wasm"));

/// What a policy module is built from.
#[derive(Debug, Clone, Default)]
pub struct BuildInput {
    /// Rego modules: (file name, Rego text). Rego v1.
    pub modules: Vec<(String, String)>,
    /// Data compiled into the module (merged data.json): an object, or null
    /// for none. Data a host sets is merged over it (the host's wins).
    pub data: serde_json::Value,
    /// Entrypoints, as `example/allow` or `data.example.allow`; a package
    /// (`example`) evaluates to the whole package. Empty: every rule of every
    /// package.
    pub entrypoints: Vec<String>,
}

/// Builds the policy module: checks the policy natively, then links it into
/// [`RUNTIME_WASM`]. Errors are [`Error::Policy`].
pub fn build_module(input: &BuildInput) -> Result<Vec<u8>, Error> {
    let checked = check(input)?;
    let bundle = serde_json::json!({
        "modules": input.modules.iter().map(|(n, t)| [n, t]).collect::<Vec<_>>(),
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
fn builtin_arity(name: &str) -> Option<u8> {
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
    for (name, text) in &input.modules {
        let source = regorus::Source::from_contents(name.clone(), text.clone())
            .map_err(|e| Error::policy(format!("{e}")))?;
        let mut parser = Parser::new(&source).map_err(|e| Error::policy(format!("{e}")))?;
        parser
            .enable_rego_v1()
            .map_err(|e| Error::policy(format!("{e}")))?;
        let module = parser.parse().map_err(|e| Error::policy(format!("{e}")))?;
        paths.add_module(&module);
        scan_calls(&source, &mut builtins).map_err(|e| Error::policy(format!("{e}")))?;
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

/// Renumbers functions once the two bundle imports are gone: imports after
/// them and defined functions move down by two; the imports themselves
/// become defined functions after the runtime's own.
struct Renumber {
    len_import: u32,
    copy_import: u32,
    /// Functions of the runtime, imported and defined.
    total: u32,
}

impl Reencode for Renumber {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result<u32, reencode::Error<Self::Error>> {
        Ok(if func == self.len_import {
            self.total - 2
        } else if func == self.copy_import {
            self.total - 1
        } else {
            func - u32::from(func > self.len_import) - u32::from(func > self.copy_import)
        })
    }
}

/// A data segment of the runtime.
struct Segment {
    /// Where it goes in memory, if active.
    offset: Option<u32>,
    len: u32,
}

/// Links `bundle` into `runtime`:
///
/// - the bundle becomes a passive data segment, and the imports
///   `wasmlayer.bundle_len` / `wasmlayer.bundle_copy` functions that read it;
/// - the ABI version globals are added and exported;
/// - the memory import's minimum drops to [`DECLARED_MIN_PAGES`] (OPA's
///   SDKs give 5 pages): the runtime's active data segments become passive,
///   and a new start function grows memory to what the runtime's layout
///   needs, copies them in place, then runs the runtime's own start
///   function.
fn link(runtime: &[u8], bundle: &[u8]) -> anyhow::Result<Vec<u8>> {
    use anyhow::{bail, Context};
    use wasm_encoder::{BlockType, EntityType, MemoryType, TypeSection};
    use wasmparser::{Payload, TypeRef};

    let bundle_len = i32::try_from(bundle.len()).context("the policy bundle is too large")?;

    // Pass 1: the runtime's imports, types, functions, globals, segments.
    let mut imported_funcs = 0u32;
    let mut defined_funcs = 0u32;
    let mut globals = 0u32;
    let mut types = 0u32;
    let mut void_type = None;
    let mut len_import = None;
    let mut copy_import = None;
    let mut needed_pages = None;
    let mut old_start = None;
    let mut segments: Vec<Segment> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(runtime) {
        match payload? {
            Payload::TypeSection(s) => {
                for group in s {
                    for sub in group?.into_types() {
                        if let wasmparser::CompositeInnerType::Func(f) = &sub.composite_type.inner {
                            if f.params().is_empty()
                                && f.results().is_empty()
                                && void_type.is_none()
                            {
                                void_type = Some(types);
                            }
                        }
                        types += 1;
                    }
                }
            }
            Payload::ImportSection(s) => {
                for imp in s.into_imports() {
                    let imp = imp?;
                    match imp.ty {
                        TypeRef::Func(ty) | TypeRef::FuncExact(ty) => {
                            match (imp.module, imp.name) {
                                (BUNDLE_MODULE, "bundle_len") => {
                                    len_import = Some((imported_funcs, ty))
                                }
                                (BUNDLE_MODULE, "bundle_copy") => {
                                    copy_import = Some((imported_funcs, ty))
                                }
                                (BUNDLE_MODULE, other) => {
                                    bail!("unexpected runtime import {BUNDLE_MODULE}.{other}")
                                }
                                _ => {}
                            }
                            imported_funcs += 1;
                        }
                        TypeRef::Global(_) => globals += 1,
                        TypeRef::Memory(m) => {
                            if m.memory64 || m.shared || needed_pages.is_some() {
                                bail!("the policy runtime must import one plain 32-bit memory");
                            }
                            needed_pages = Some(m.initial);
                        }
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(s) => defined_funcs = s.count(),
            Payload::GlobalSection(s) => globals += s.count(),
            Payload::MemorySection(s) if s.count() > 0 => {
                bail!("the policy runtime must import its memory, not define it")
            }
            Payload::StartSection { func, .. } => old_start = Some(func),
            Payload::DataSection(s) => {
                for d in s {
                    let d = d?;
                    let offset = match d.kind {
                        wasmparser::DataKind::Passive => None,
                        wasmparser::DataKind::Active {
                            memory_index: 0,
                            offset_expr,
                        } => match offset_expr.get_operators_reader().read()? {
                            wasmparser::Operator::I32Const { value } => Some(value as u32),
                            op => bail!(
                                "unsupported data segment offset {op:?} in the policy runtime"
                            ),
                        },
                        wasmparser::DataKind::Active { .. } => {
                            bail!("data segment for another memory")
                        }
                    };
                    segments.push(Segment {
                        offset,
                        len: d.data.len() as u32,
                    });
                }
            }
            _ => {}
        }
    }
    let (Some((len_idx, len_ty)), Some((copy_idx, copy_ty))) = (len_import, copy_import) else {
        bail!("the policy runtime lacks the {BUNDLE_MODULE}.bundle_len/bundle_copy imports");
    };
    let Some(needed_pages) = needed_pages else {
        bail!("the policy runtime does not import its memory");
    };
    let total = imported_funcs + defined_funcs;
    let mut re = Renumber {
        len_import: len_idx,
        copy_import: copy_idx,
        total,
    };
    let bundle_segment = segments.len() as u32;
    let start_type = void_type.unwrap_or(types);
    let start_func = total; // after the two bundle functions (total - 2, total - 1)
    let old_start = old_start.map(|f| re.function_index(f)).transpose()?;
    let needed_pages = i32::try_from(needed_pages).context("the runtime needs too much memory")?;

    // The functions the linker adds, in function index order.
    let added_functions = || {
        let mut len_fn = Function::new([]);
        len_fn.instruction(&Instruction::I32Const(bundle_len));
        len_fn.instruction(&Instruction::End);

        let mut copy_fn = Function::new([]);
        copy_fn.instruction(&Instruction::LocalGet(0));
        copy_fn.instruction(&Instruction::I32Const(0));
        copy_fn.instruction(&Instruction::I32Const(bundle_len));
        copy_fn.instruction(&Instruction::MemoryInit {
            mem: 0,
            data_index: bundle_segment,
        });
        copy_fn.instruction(&Instruction::End);

        let mut start = Function::new([]);
        // if memory.size < NEEDED { if memory.grow(NEEDED - memory.size) == -1 { trap } }
        start.instruction(&Instruction::MemorySize(0));
        start.instruction(&Instruction::I32Const(needed_pages));
        start.instruction(&Instruction::I32LtU);
        start.instruction(&Instruction::If(BlockType::Empty));
        start.instruction(&Instruction::I32Const(needed_pages));
        start.instruction(&Instruction::MemorySize(0));
        start.instruction(&Instruction::I32Sub);
        start.instruction(&Instruction::MemoryGrow(0));
        start.instruction(&Instruction::I32Const(-1));
        start.instruction(&Instruction::I32Eq);
        start.instruction(&Instruction::If(BlockType::Empty));
        start.instruction(&Instruction::Unreachable);
        start.instruction(&Instruction::End);
        start.instruction(&Instruction::End);
        for (i, seg) in segments.iter().enumerate() {
            if let Some(offset) = seg.offset {
                start.instruction(&Instruction::I32Const(offset as i32));
                start.instruction(&Instruction::I32Const(0));
                start.instruction(&Instruction::I32Const(seg.len as i32));
                start.instruction(&Instruction::MemoryInit {
                    mem: 0,
                    data_index: i as u32,
                });
                start.instruction(&Instruction::DataDrop(i as u32));
            }
        }
        if let Some(f) = old_start {
            start.instruction(&Instruction::Call(f));
        }
        start.instruction(&Instruction::End);
        [len_fn, copy_fn, start]
    };
    let abi_globals = |section: &mut GlobalSection| {
        for v in [1, 3] {
            section.global(
                GlobalType {
                    val_type: ValType::I32,
                    mutable: false,
                    shared: false,
                },
                &ConstExpr::i32_const(v),
            );
        }
    };
    let abi_exports = |section: &mut ExportSection| {
        section.export("opa_wasm_abi_version", ExportKind::Global, globals);
        section.export(
            "opa_wasm_abi_minor_version",
            ExportKind::Global,
            globals + 1,
        );
    };

    // Pass 2: rewrite, adding sections the runtime lacks where they belong.
    let mut module = Module::new();
    let mut code: Option<(wasm_encoder::CodeSection, u32)> = None;
    let mut emitted = BTreeSet::new();
    let finish_code = |module: &mut Module, mut c: wasm_encoder::CodeSection| {
        for f in added_functions() {
            c.function(&f);
        }
        module.section(&c);
    };
    // Sections in the order a module holds them.
    let order = |id: u8| {
        const ORDER: [u8; 13] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
        ORDER.iter().position(|x| *x == id).unwrap_or(usize::MAX)
    };
    // Adds the sections the linker needs that the runtime lacks, before a
    // section `next` of the runtime.
    let fill_in = |module: &mut Module, emitted: &mut BTreeSet<u8>, next: u8| {
        let missing = |id: SectionId, emitted: &BTreeSet<u8>| {
            !emitted.contains(&(id as u8)) && order(id as u8) < order(next)
        };
        if missing(SectionId::Global, emitted) {
            let mut g = GlobalSection::new();
            abi_globals(&mut g);
            module.section(&g);
            emitted.insert(SectionId::Global as u8);
        }
        if missing(SectionId::Export, emitted) {
            let mut e = ExportSection::new();
            abi_exports(&mut e);
            module.section(&e);
            emitted.insert(SectionId::Export as u8);
        }
        if missing(SectionId::Start, emitted) {
            module.section(&StartSection {
                function_index: start_func,
            });
            emitted.insert(SectionId::Start as u8);
        }
        if missing(SectionId::DataCount, emitted) {
            module.section(&DataCountSection {
                count: bundle_segment + 1,
            });
            emitted.insert(SectionId::DataCount as u8);
        }
    };

    for payload in wasmparser::Parser::new(0).parse_all(runtime) {
        let payload = payload?;
        if let Some((id, _)) = payload.as_section() {
            if id != SectionId::Custom as u8 {
                fill_in(&mut module, &mut emitted, id);
                emitted.insert(id);
            }
        }
        match payload {
            Payload::Version { .. } | Payload::End(_) => {}
            Payload::TypeSection(s) => {
                if void_type.is_some() {
                    module.section(&RawSection {
                        id: SectionId::Type as u8,
                        data: section_bytes(runtime, s.range()),
                    });
                } else {
                    let mut t = TypeSection::new();
                    re.parse_type_section(&mut t, s)?;
                    t.ty().function([], []);
                    module.section(&t);
                }
            }
            Payload::ImportSection(s) => {
                let mut imports = ImportSection::new();
                for imp in s.into_imports() {
                    let imp = imp?;
                    if imp.module == BUNDLE_MODULE {
                        continue;
                    }
                    let ty = match imp.ty {
                        TypeRef::Memory(m) => EntityType::Memory(MemoryType {
                            minimum: m.initial.min(DECLARED_MIN_PAGES),
                            maximum: None,
                            memory64: false,
                            shared: false,
                            page_size_log2: None,
                        }),
                        other => re.entity_type(other)?,
                    };
                    imports.import(imp.module, imp.name, ty);
                }
                module.section(&imports);
            }
            Payload::FunctionSection(s) => {
                let mut funcs = FunctionSection::new();
                re.parse_function_section(&mut funcs, s)?;
                funcs.function(len_ty);
                funcs.function(copy_ty);
                funcs.function(start_type);
                module.section(&funcs);
            }
            Payload::TableSection(s) => {
                module.section(&RawSection {
                    id: SectionId::Table as u8,
                    data: section_bytes(runtime, s.range()),
                });
            }
            Payload::GlobalSection(s) => {
                let mut g = GlobalSection::new();
                re.parse_global_section(&mut g, s)?;
                abi_globals(&mut g);
                module.section(&g);
            }
            Payload::ExportSection(s) => {
                let mut e = ExportSection::new();
                re.parse_export_section(&mut e, s)?;
                abi_exports(&mut e);
                module.section(&e);
            }
            Payload::StartSection { .. } => {
                module.section(&StartSection {
                    function_index: start_func,
                });
            }
            Payload::ElementSection(s) => {
                let mut e = wasm_encoder::ElementSection::new();
                re.parse_element_section(&mut e, s)?;
                module.section(&e);
            }
            Payload::DataCountSection { .. } => {
                module.section(&DataCountSection {
                    count: bundle_segment + 1,
                });
            }
            Payload::CodeSectionStart { count, .. } => {
                if count == 0 {
                    finish_code(&mut module, wasm_encoder::CodeSection::new());
                } else {
                    code = Some((wasm_encoder::CodeSection::new(), count));
                }
            }
            Payload::CodeSectionEntry(body) => {
                let Some((c, left)) = code.as_mut() else {
                    bail!("function body outside the code section");
                };
                re.parse_function_body(c, body)?;
                *left -= 1;
                if *left == 0 {
                    if let Some((c, _)) = code.take() {
                        finish_code(&mut module, c);
                    }
                }
            }
            Payload::DataSection(s) => {
                let mut d = DataSection::new();
                for datum in s {
                    // Active segments are copied in by the start function.
                    d.passive(datum?.data.iter().copied());
                }
                d.passive(bundle.iter().copied());
                module.section(&d);
            }
            // Names and other custom sections are dropped.
            Payload::CustomSection(_) => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    bail!(
                        "unexpected section {id} ({} bytes) in the policy runtime",
                        range.end - range.start
                    );
                }
            }
        }
    }
    if !emitted.contains(&(SectionId::Code as u8)) {
        bail!("the policy runtime has no code");
    }
    if !emitted.contains(&(SectionId::Data as u8)) {
        let mut d = DataSection::new();
        d.passive(bundle.iter().copied());
        module.section(&d);
    }
    Ok(module.finish())
}

/// The bytes of a section of `module` (wasmparser gives ranges as `u64`).
fn section_bytes(module: &[u8], range: std::ops::Range<u64>) -> &[u8] {
    // The ranges come from parsing `module`, so they are within it.
    &module[range.start as usize..range.end as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rego: &str, entrypoints: &[&str]) -> BuildInput {
        BuildInput {
            modules: vec![("policy.rego".into(), rego.into())],
            data: serde_json::Value::Null,
            entrypoints: entrypoints.iter().map(|s| s.to_string()).collect(),
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
