//! Lowering Rego (regorus's AST) to a [`Plan`].
//!
//! A rule becomes a plan function that computes its value once per
//! evaluation; a Rego function becomes a plan function of its arguments. A
//! query lowers literal by literal into the current block: a literal that
//! iterates (`some x in xs`, `xs[_]`, `data.a[k]` with `k` unbound) opens a
//! [`Stmt::Scan`] and the rest of the query is lowered inside it, so a
//! failing literal goes on with the next element, as Rego backtracks. `not`,
//! `every`, comprehensions and `with` lower to blocks of their own.
//!
//! What the lowering does not support fails the build with the construct
//! and its source location (`policy build --interpreter` builds those).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regorus::unstable::{
    ArithOp, AssignOp, BinOp, BoolOp, Expr, Literal, LiteralStmt, Module, Query, Rule, RuleHead,
    Span,
};
use serde_json::Value as Json;

use super::plan::{Callee, Cmp, Cond, Func, FuncId, Label, Local, Plan, Stmt};

type Result<T> = std::result::Result<T, String>;

/// A located error.
fn err(span: &Span, msg: &str) -> String {
    span.message("error", msg)
}

/// A variable read where no literal lowered before binds it, in any order
/// of the query's literals the compiler tried.
fn unbound(span: &Span, name: &str) -> String {
    unsupported(
        span,
        &format!("reading var {name} where no earlier literal binds it (write the literal that binds it first)"),
    )
}

fn unsupported(span: &Span, what: &str) -> String {
    err(
        span,
        &format!(
            "{what} is not supported by the Rego compiler (build with `--interpreter` instead)"
        ),
    )
}

/// The kind of a rule path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Complete,
    PartialSet,
    PartialObject,
    Function,
}

/// One definition of a rule (or function).
struct Def<'m> {
    module: usize,
    rule: &'m Rule,
}

struct RuleInfo<'m> {
    kind: Kind,
    defs: Vec<Def<'m>>,
    /// `default` rules.
    defaults: Vec<Def<'m>>,
    func: Option<FuncId>,
    in_progress: bool,
    /// Span of the first definition, for messages.
    span: Span,
}

/// Names a module sees: its package and its imports.
struct Scope {
    package: Vec<String>,
    /// Alias -> (root `data` or `input`, path below it).
    imports: HashMap<String, (String, Vec<String>)>,
}

/// Variables bound in a query: name -> local.
type Env = BTreeMap<String, Local>;

/// A function being built: its locals and the stack of open frames.
#[derive(Clone)]
struct FnBuilder {
    locals: u32,
    labels: u32,
    frames: Vec<Frame>,
}

#[derive(Clone)]
enum FrameKind {
    Root,
    Block(Label),
    Scan { coll: Local, key: Local, val: Local },
}

#[derive(Clone)]
struct Frame {
    kind: FrameKind,
    body: Vec<Stmt>,
}

impl FnBuilder {
    fn new(params: u32) -> Self {
        FnBuilder {
            locals: params,
            labels: 0,
            frames: vec![Frame {
                kind: FrameKind::Root,
                body: Vec::new(),
            }],
        }
    }

    fn local(&mut self) -> Local {
        self.locals += 1;
        self.locals - 1
    }

    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }

    fn emit(&mut self, s: Stmt) {
        self.frames.last_mut().expect("a frame").body.push(s);
    }

    fn depth(&self) -> usize {
        self.frames.len()
    }

    fn open_block(&mut self) -> Label {
        let label = self.label();
        self.frames.push(Frame {
            kind: FrameKind::Block(label),
            body: Vec::new(),
        });
        label
    }

    /// Opens a scan over `coll`; returns (key, value).
    fn open_scan(&mut self, coll: Local) -> (Local, Local) {
        let key = self.local();
        let val = self.local();
        self.frames.push(Frame {
            kind: FrameKind::Scan { coll, key, val },
            body: Vec::new(),
        });
        (key, val)
    }

    /// Closes frames down to `depth`.
    fn close_to(&mut self, depth: usize) {
        while self.frames.len() > depth {
            let f = self.frames.pop().expect("a frame");
            let stmt = match f.kind {
                FrameKind::Root => unreachable!("the root frame is never closed"),
                FrameKind::Block(label) => Stmt::Block {
                    label,
                    body: f.body,
                },
                FrameKind::Scan { coll, key, val } => Stmt::Scan {
                    coll,
                    key,
                    val,
                    body: f.body,
                },
            };
            self.emit(stmt);
        }
    }

    fn finish(mut self) -> (u32, Vec<Stmt>) {
        assert_eq!(self.frames.len(), 1, "frames left open");
        let root = self.frames.pop().expect("root");
        (self.locals, root.body)
    }
}

/// What a query does each time it holds.
enum Yield<'a> {
    /// A complete rule or function definition: `result = value`; with a
    /// label, leave it once a value is found.
    Value {
        result: Local,
        value: Option<&'a Expr>,
        leave: Option<Label>,
        conflict: u32,
    },
    SetAdd {
        set: Local,
        term: &'a Expr,
    },
    ArrayPush {
        arr: Local,
        term: &'a Expr,
    },
    ObjectInsert {
        obj: Local,
        key: &'a Expr,
        value: Option<&'a Expr>,
        conflict: u32,
    },
    /// Sets the flag and leaves the block: `not`, `every`, `with`.
    Flag {
        flag: Local,
        leave: Label,
    },
}

pub struct Lowerer<'m> {
    scopes: Vec<Scope>,
    rules: BTreeMap<Vec<String>, RuleInfo<'m>>,
    plan: Plan,
    consts: HashMap<String, u32>,
    fb: FnBuilder,
    /// Builtins compiled into the runtime.
    compiled_builtins: BTreeSet<String>,
    host_ids: HashMap<String, u32>,
    /// Functions whose value is cached, in order (their globals).
    cached: Vec<FuncId>,
    /// `with` literals so far (each saves the caches in locals of its own).
    with_sites: u32,
    /// Functions of the documents of prefixes of rule paths.
    docs: HashMap<Vec<String>, FuncId>,
    /// An unbound variable was read since this was last cleared: the
    /// literal being lowered may go later in its query.
    unbound_seen: bool,
}

/// The path a rule head defines below its package, and for a partial object
/// rule the key expression.
fn head_path(refr: &Expr) -> Option<(Vec<String>, Option<&Expr>)> {
    match refr {
        Expr::Var { span, .. } => Some((vec![span.text().to_string()], None)),
        Expr::RefDot { refr, field, .. } => {
            let (mut c, key) = head_path(refr)?;
            if key.is_some() {
                return None;
            }
            c.push(field.0.text().to_string());
            Some((c, None))
        }
        Expr::RefBrack { refr, index, .. } => {
            let (mut c, key) = head_path(refr)?;
            if key.is_some() {
                return None;
            }
            match index.as_ref() {
                Expr::String { value, .. } | Expr::RawString { value, .. } => {
                    c.push(value.as_string().ok()?.to_string());
                    Some((c, None))
                }
                other => Some((c, Some(other))),
            }
        }
        _ => None,
    }
}

/// Components of a plain ref (`a.b["c"]`).
fn ref_path(expr: &Expr) -> Option<Vec<String>> {
    match head_path(expr)? {
        (c, None) => Some(c),
        _ => None,
    }
}

fn span_of(e: &Expr) -> &Span {
    match e {
        Expr::String { span, .. }
        | Expr::RawString { span, .. }
        | Expr::Number { span, .. }
        | Expr::Bool { span, .. }
        | Expr::Null { span, .. }
        | Expr::Var { span, .. }
        | Expr::Array { span, .. }
        | Expr::Set { span, .. }
        | Expr::Object { span, .. }
        | Expr::ArrayCompr { span, .. }
        | Expr::SetCompr { span, .. }
        | Expr::ObjectCompr { span, .. }
        | Expr::Call { span, .. }
        | Expr::UnaryExpr { span, .. }
        | Expr::RefDot { span, .. }
        | Expr::RefBrack { span, .. }
        | Expr::BinExpr { span, .. }
        | Expr::BoolExpr { span, .. }
        | Expr::ArithExpr { span, .. }
        | Expr::AssignExpr { span, .. }
        | Expr::Membership { span, .. } => span,
        #[allow(unreachable_patterns)]
        _ => unreachable!("regorus builds without rego-extensions"),
    }
}

/// A scalar literal as JSON.
fn scalar(e: &Expr) -> Option<Json> {
    match e {
        // `-3`: the only use of unary minus Rego allows.
        Expr::UnaryExpr { expr, .. } => match scalar(expr)? {
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(Json::from(-i))
                } else {
                    serde_json::Number::from_f64(-n.as_f64()?).map(Json::Number)
                }
            }
            _ => None,
        },
        Expr::String { value, .. }
        | Expr::RawString { value, .. }
        | Expr::Number { value, .. }
        | Expr::Bool { value, .. }
        | Expr::Null { value, .. } => serde_json::to_value(value).ok(),
        _ => None,
    }
}

/// A literal made only of constants and JSON-shaped (no sets, string keys).
fn constant(e: &Expr) -> Option<Json> {
    match e {
        Expr::Array { items, .. } => items
            .iter()
            .map(|i| constant(i))
            .collect::<Option<Vec<_>>>()
            .map(Json::Array),
        Expr::Object { fields, .. } => {
            let mut m = serde_json::Map::new();
            for (_, k, v) in fields {
                let Some(Json::String(k)) = scalar(k) else {
                    return None;
                };
                m.insert(k, constant(v)?);
            }
            Some(Json::Object(m))
        }
        e => scalar(e),
    }
}

/// A path element of a ref.
enum Elem<'a> {
    Const(Json),
    Expr(&'a Expr),
}

/// Splits a ref into its head and its path.
fn flatten(e: &Expr) -> (&Expr, Vec<Elem<'_>>) {
    match e {
        Expr::RefDot { refr, field, .. } => {
            let (h, mut p) = flatten(refr);
            p.push(Elem::Const(Json::String(field.0.text().to_string())));
            (h, p)
        }
        Expr::RefBrack { refr, index, .. } => {
            let (h, mut p) = flatten(refr);
            p.push(match scalar(index) {
                Some(j) => Elem::Const(j),
                None => Elem::Expr(index),
            });
            (h, p)
        }
        other => (other, Vec::new()),
    }
}

/// The dotted name of a call's function (`a.b.c`).
fn call_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Var { span, .. } => Some(span.text().to_string()),
        Expr::RefDot { refr, field, .. } => {
            Some(format!("{}.{}", call_name(refr)?, field.0.text()))
        }
        _ => None,
    }
}

const CONFLICT: &str = "eval_conflict_error: complete rules must not produce multiple outputs";
const FN_CONFLICT: &str =
    "eval_conflict_error: functions must not produce multiple outputs for same inputs";
const OBJ_CONFLICT: &str = "eval_conflict_error: object keys must be unique";

impl<'m> Lowerer<'m> {
    pub fn new(modules: &'m [Module], compiled_builtins: BTreeSet<String>) -> Result<Self> {
        let mut scopes = Vec::new();
        let mut rules: BTreeMap<Vec<String>, RuleInfo<'m>> = BTreeMap::new();
        for (mi, m) in modules.iter().enumerate() {
            let package = ref_path(&m.package.refr)
                .ok_or_else(|| err(&m.package.span, "unsupported package path"))?;
            let mut imports = HashMap::new();
            for imp in &m.imports {
                let Some(path) = ref_path(&imp.refr) else {
                    return Err(unsupported(&imp.span, "this import"));
                };
                let root = path[0].clone();
                if root == "rego" || root == "future" {
                    continue;
                }
                if root != "data" && root != "input" {
                    return Err(unsupported(&imp.span, "this import"));
                }
                let alias = match &imp.r#as {
                    Some(s) => s.text().to_string(),
                    None => path.last().cloned().unwrap_or_default(),
                };
                imports.insert(alias, (root, path[1..].to_vec()));
            }
            for rule in &m.policy {
                let rule: &'m Rule = rule;
                let (refr, kind, is_default) = match rule {
                    Rule::Spec { head, .. } => match head {
                        RuleHead::Compr { refr, .. } => {
                            let kind = match head_path(refr) {
                                Some((_, Some(_))) => Kind::PartialObject,
                                _ => Kind::Complete,
                            };
                            (refr, kind, false)
                        }
                        RuleHead::Set { refr, .. } => (refr, Kind::PartialSet, false),
                        RuleHead::Func { refr, .. } => (refr, Kind::Function, false),
                    },
                    Rule::Default { refr, args, .. } => (
                        refr,
                        if args.is_empty() {
                            Kind::Complete
                        } else {
                            Kind::Function
                        },
                        true,
                    ),
                };
                let Some((below, _)) = head_path(refr) else {
                    return Err(unsupported(rule.span(), "this rule head"));
                };
                let mut path = package.clone();
                path.extend(below);
                let info = rules.entry(path.clone()).or_insert_with(|| RuleInfo {
                    kind,
                    defs: Vec::new(),
                    defaults: Vec::new(),
                    func: None,
                    in_progress: false,
                    span: rule.span().clone(),
                });
                if info.kind != kind {
                    return Err(err(
                        rule.span(),
                        &format!(
                            "rule data.{} is defined with different kinds",
                            path.join(".")
                        ),
                    ));
                }
                let def = Def { module: mi, rule };
                if is_default {
                    info.defaults.push(def);
                } else {
                    info.defs.push(def);
                }
            }
            scopes.push(Scope { package, imports });
        }
        // A rule path must not be a prefix of another (`a.b` and `a.b.c`).
        let paths: Vec<&Vec<String>> = rules.keys().collect();
        for w in paths.windows(2) {
            if w[1].starts_with(w[0]) {
                return Err(err(
                    &rules[w[1]].span,
                    &format!(
                        "rule data.{} lies inside rule data.{}",
                        w[1].join("."),
                        w[0].join(".")
                    ),
                ));
            }
        }
        let mut lw = Lowerer {
            scopes,
            rules,
            plan: Plan::default(),
            consts: HashMap::new(),
            fb: FnBuilder::new(0),
            compiled_builtins,
            host_ids: HashMap::new(),
            cached: Vec::new(),
            with_sites: 0,
            docs: HashMap::new(),
            unbound_seen: false,
        };
        // Constants the code generator relies on: 0 false, 1 true.
        lw.konst(Json::Bool(false));
        lw.konst(Json::Bool(true));
        Ok(lw)
    }

    /// Adds an entrypoint: a rule, or a prefix of rules (its document).
    pub fn entrypoint(&mut self, path: &[String], span_hint: &str) -> Result<()> {
        let f = if let Some(info) = self.rules.get(path) {
            if info.kind == Kind::Function {
                return Err(format!("entrypoint {span_hint} names a function"));
            }
            self.rule_func(path)?
        } else {
            self.doc_func(path)?
        };
        self.plan.entrypoints.push(f);
        Ok(())
    }

    pub fn finish(mut self) -> (Plan, Vec<FuncId>) {
        let mut host: Vec<(String, u32)> = self.host_ids.drain().collect();
        host.sort_by_key(|(_, id)| *id);
        self.plan.host_builtins = host
            .into_iter()
            .map(|(n, _)| {
                let arity = super::builtin_arity(&n).unwrap_or(0);
                (n, arity)
            })
            .collect();
        (self.plan, self.cached)
    }

    /// The error of reading an unbound variable (and a note of it, see
    /// [`Lowerer::lower_query`]).
    fn unbound(&mut self, span: &Span, name: &str) -> String {
        self.unbound_seen = true;
        unbound(span, name)
    }

    fn konst(&mut self, v: Json) -> u32 {
        let key = v.to_string();
        if let Some(i) = self.consts.get(&key) {
            return *i;
        }
        let i = self.plan.consts.len() as u32;
        self.plan.consts.push(v);
        self.consts.insert(key, i);
        i
    }

    fn const_local(&mut self, v: Json) -> Local {
        let idx = self.konst(v);
        let dst = self.fb.local();
        self.fb.emit(Stmt::Const { dst, idx });
        dst
    }

    fn msg(&mut self, s: &str) -> u32 {
        self.konst(Json::String(s.to_string()))
    }

    fn call(&mut self, callee: Callee, args: Vec<Local>, defined: bool) -> Local {
        let dst = self.fb.local();
        self.fb.emit(Stmt::Call {
            dst: Some(dst),
            callee,
            args,
            defined,
        });
        dst
    }

    fn rt(&mut self, name: &'static str, args: Vec<Local>) -> Local {
        self.call(Callee::Rt(name), args, false)
    }

    /// Runs `f` with a fresh function builder; returns the new function.
    fn build_func(
        &mut self,
        name: String,
        params: u32,
        cached: bool,
        f: impl FnOnce(&mut Self) -> Result<Local>,
    ) -> Result<FuncId> {
        let id = self.plan.funcs.len() as FuncId;
        self.plan.funcs.push(Func {
            name: name.clone(),
            ..Func::default()
        });
        let saved = std::mem::replace(&mut self.fb, FnBuilder::new(params));
        let result = f(self);
        let fb = std::mem::replace(&mut self.fb, saved);
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                // The query that asked for it may be retried later (see
                // `lower_query`): leave a valid function nothing calls.
                let f = &mut self.plan.funcs[id as usize];
                f.params = params;
                f.locals = params.max(1);
                return Err(e);
            }
        };
        let (locals, body) = fb.finish();
        self.plan.funcs[id as usize] = Func {
            name,
            params,
            locals,
            body,
            result,
            cached,
        };
        if cached {
            self.cached.push(id);
        }
        Ok(id)
    }

    /// The function computing the rule at `path`.
    fn rule_func(&mut self, path: &[String]) -> Result<FuncId> {
        let info = self.rules.get_mut(path).expect("a rule");
        if let Some(f) = info.func {
            return Ok(f);
        }
        if info.in_progress {
            return Err(err(
                &info.span,
                &format!("rule data.{} is recursive", path.join(".")),
            ));
        }
        info.in_progress = true;
        let kind = info.kind;
        let name = format!("data.{}", path.join("."));
        let path_v = path.to_vec();
        let params = if kind == Kind::Function {
            self.function_arity(path)?
        } else {
            0
        };
        let f = self.build_func(name, params, kind != Kind::Function, |lw| match kind {
            Kind::Complete => lw.lower_complete(&path_v),
            Kind::PartialSet => lw.lower_partial(&path_v, false),
            Kind::PartialObject => lw.lower_partial(&path_v, true),
            Kind::Function => lw.lower_function(&path_v),
        });
        let info = self.rules.get_mut(path).expect("a rule");
        info.in_progress = false;
        let f = f?;
        info.func = Some(f);
        Ok(f)
    }

    fn function_arity(&self, path: &[String]) -> Result<u32> {
        let info = &self.rules[path];
        let mut arity = None;
        for d in info.defs.iter().chain(info.defaults.iter()) {
            let n = match d.rule {
                Rule::Spec {
                    head: RuleHead::Func { args, .. },
                    ..
                } => args.len(),
                Rule::Default { args, .. } => args.len(),
                _ => 0,
            };
            if arity.is_some_and(|a| a != n) {
                return Err(err(
                    d.rule.span(),
                    &format!(
                        "function data.{} is defined with different arities",
                        path.join(".")
                    ),
                ));
            }
            arity = Some(n);
        }
        Ok(arity.unwrap_or(0) as u32)
    }

    /// What a rule or function of one value starts with: its result (0 so
    /// far), the message of a conflict between definitions, and the
    /// definitions (module, rule).
    fn value_rule(
        &mut self,
        path: &[String],
        conflict: &str,
    ) -> (Local, u32, Vec<(usize, &'m Rule)>) {
        let result = self.fb.local();
        self.fb.emit(Stmt::SetFlag {
            dst: result,
            on: false,
        });
        let conflict = self.msg(&format!("{conflict} (data.{})", path.join(".")));
        let defs = self.defs(path);
        (result, conflict, defs)
    }

    /// The definitions of a rule (not its defaults): (module, rule).
    fn defs(&self, path: &[String]) -> Vec<(usize, &'m Rule)> {
        self.rules[path]
            .defs
            .iter()
            .map(|d| (d.module, d.rule))
            .collect()
    }

    /// A complete rule: the value of its definitions (else chains in order),
    /// or its default.
    fn lower_complete(&mut self, path: &[String]) -> Result<Local> {
        let (result, conflict, defs) = self.value_rule(path, CONFLICT);
        for (module, rule) in defs {
            let Rule::Spec { head, bodies, .. } = rule else {
                continue;
            };
            let RuleHead::Compr { assign, .. } = head else {
                continue;
            };
            let head_value = assign.as_ref().map(|a| &*a.value);
            self.lower_bodies(module, bodies, head_value, result, conflict, &Env::new())?;
        }
        self.apply_default(path, result)?;
        Ok(result)
    }

    /// The bodies of one definition: `if` bodies and `else` chains.
    fn lower_bodies(
        &mut self,
        module: usize,
        bodies: &'m [regorus::unstable::RuleBody],
        head_value: Option<&'m Expr>,
        result: Local,
        conflict: u32,
        env: &Env,
    ) -> Result<()> {
        if bodies.is_empty() {
            // `r := v` without a body.
            let d = self.fb.depth();
            self.fb.open_block();
            let y = Yield::Value {
                result,
                value: head_value,
                leave: None,
                conflict,
            };
            self.do_yield(module, &y, &mut env.clone())?;
            self.fb.close_to(d);
            return Ok(());
        }
        // An else chain: the first body that holds gives the value.
        let chain = bodies.iter().any(|b| b.is_else);
        let depth = self.fb.depth();
        let chain_label = chain.then(|| self.fb.open_block());
        for body in bodies {
            // An `else` without a value is `else := true`.
            let value = match &body.assign {
                Some(a) => Some(&*a.value),
                None if body.is_else => None,
                None => head_value,
            };
            let d = self.fb.depth();
            let label = self.fb.open_block();
            // A constant value cannot conflict with itself: leave once found.
            let leave = if chain {
                chain_label
            } else if value.is_none_or(|v| constant(v).is_some()) {
                Some(label)
            } else {
                None
            };
            let y = Yield::Value {
                result,
                value,
                leave,
                conflict,
            };
            self.lower_query(module, &body.query, env.clone(), &y)?;
            self.fb.close_to(d);
        }
        self.fb.close_to(depth);
        Ok(())
    }

    fn apply_default(&mut self, path: &[String], result: Local) -> Result<()> {
        let defaults: Vec<(usize, &'m Rule)> = self.rules[path]
            .defaults
            .iter()
            .map(|d| (d.module, d.rule))
            .collect();
        if let Some((module, Rule::Default { value, .. })) = defaults.first().copied() {
            // When no definition gave a value: the default.
            let d = self.fb.depth();
            self.fb.open_block();
            self.fb.emit(Stmt::FlagClear(result));
            let dv = self.lower_value(module, value, &mut Env::new())?;
            self.fb.emit(Stmt::Move {
                dst: result,
                src: dv,
            });
            self.fb.close_to(d);
        }
        Ok(())
    }

    /// A partial set or object rule.
    fn lower_partial(&mut self, path: &[String], object: bool) -> Result<Local> {
        let coll = if object {
            self.rt("rt_object_new", vec![])
        } else {
            self.rt("rt_set_new", vec![])
        };
        let conflict = self.msg(&format!("{OBJ_CONFLICT} (data.{})", path.join(".")));
        let defs = self.defs(path);
        for (module, rule) in defs {
            let Rule::Spec { head, bodies, .. } = rule else {
                continue;
            };
            // `p contains x` without a body holds once.
            let bodies: Vec<Option<&'m regorus::unstable::RuleBody>> = if bodies.is_empty() {
                vec![None]
            } else {
                bodies.iter().map(Some).collect()
            };
            for body in bodies {
                let y = match head {
                    RuleHead::Set { key, refr, .. } => match key {
                        Some(k) => Yield::SetAdd { set: coll, term: k },
                        None => match head_path(refr) {
                            Some((_, Some(k))) => Yield::SetAdd { set: coll, term: k },
                            _ => return Err(unsupported(rule.span(), "this rule head")),
                        },
                    },
                    RuleHead::Compr { refr, assign, .. } => {
                        let Some((_, Some(k))) = head_path(refr) else {
                            return Err(unsupported(rule.span(), "this rule head"));
                        };
                        let value = match (body.and_then(|b| b.assign.as_ref()), assign) {
                            (Some(a), _) | (None, Some(a)) => Some(&*a.value),
                            (None, None) => None,
                        };
                        Yield::ObjectInsert {
                            obj: coll,
                            key: k,
                            value,
                            conflict,
                        }
                    }
                    RuleHead::Func { .. } => unreachable!("functions are not partial rules"),
                };
                let d = self.fb.depth();
                self.fb.open_block();
                match body {
                    Some(body) => self.lower_query(module, &body.query, Env::new(), &y)?,
                    None => self.do_yield(module, &y, &mut Env::new())?,
                }
                self.fb.close_to(d);
            }
        }
        Ok(coll)
    }

    /// A function: each definition unifies its parameters with the
    /// arguments (locals `0..params`), then its bodies give the value.
    fn lower_function(&mut self, path: &[String]) -> Result<Local> {
        let (result, conflict, defs) = self.value_rule(path, FN_CONFLICT);
        for (module, rule) in defs {
            let Rule::Spec {
                head: RuleHead::Func { args, assign, .. },
                bodies,
                ..
            } = rule
            else {
                continue;
            };
            let d = self.fb.depth();
            self.fb.open_block();
            let mut env = Env::new();
            for (i, a) in args.iter().enumerate() {
                self.unify_pattern(module, a, i as Local, &mut env, true)?;
            }
            let head_value = assign.as_ref().map(|a| &*a.value);
            self.lower_bodies(module, bodies, head_value, result, conflict, &env)?;
            self.fb.close_to(d);
        }
        // `default f(_) := v`
        self.apply_default(path, result)?;
        Ok(result)
    }

    /// The document at a prefix of rule paths: an object of the rules (and
    /// prefixes) below it, merged over the data there.
    fn doc_func(&mut self, prefix: &[String]) -> Result<FuncId> {
        if let Some(f) = self.docs.get(prefix) {
            return Ok(*f);
        }
        let children: BTreeSet<String> = self
            .rules
            .iter()
            .filter(|(p, info)| {
                p.len() > prefix.len() && p.starts_with(prefix) && info.kind != Kind::Function
            })
            .map(|(p, _)| p[prefix.len()].clone())
            .collect();
        let prefix_v = prefix.to_vec();
        self.build_func(format!("data.{}", prefix.join(".")), 0, true, move |lw| {
            let data = lw.rt("rt_data", vec![]);
            let mut base = data;
            for c in &prefix_v {
                let k = lw.const_local(Json::String(c.clone()));
                base = lw.rt("rt_get", vec![base, k]);
            }
            let obj = lw.rt("rt_object_new", vec![]);
            // The data below the prefix first.
            let d = lw.fb.depth();
            lw.fb.open_block();
            lw.fb.emit(Stmt::Defined(base));
            let (k, v) = lw.fb.open_scan(base);
            let c = lw.msg(OBJ_CONFLICT);
            lw.fb.emit(Stmt::ObjectInsert {
                obj,
                key: k,
                value: v,
                conflict: c,
            });
            lw.fb.close_to(d);
            let overwrite = lw.msg("rules and data overlap");
            for child in children {
                let mut p = prefix_v.clone();
                p.push(child.clone());
                let f = if lw.rules.contains_key(&p) {
                    lw.rule_func(&p)?
                } else {
                    lw.doc_func(&p)?
                };
                let d = lw.fb.depth();
                lw.fb.open_block();
                let v = lw.call(Callee::Func(f), vec![], true);
                let k = lw.const_local(Json::String(child));
                lw.fb.emit(Stmt::ObjectInsert {
                    obj,
                    key: k,
                    value: v,
                    conflict: overwrite,
                });
                lw.fb.close_to(d);
            }
            Ok(obj)
        })
        .inspect(|f| {
            self.docs.insert(prefix.to_vec(), *f);
        })
    }

    // -----------------------------------------------------------------------
    // Queries.

    /// Lowers a query into the current frame; `y` runs where it holds.
    /// Frames it opens are closed before it returns.
    ///
    /// Literals are lowered in the order written, except that one reading a
    /// variable a later literal binds waits until that literal has been
    /// lowered (as regorus and OPA reorder queries for safety).
    fn lower_query(
        &mut self,
        module: usize,
        q: &'m Query,
        mut env: Env,
        y: &Yield<'m>,
    ) -> Result<()> {
        let depth = self.fb.depth();
        let mut pending: Vec<&'m LiteralStmt> = q.stmts.iter().collect();
        while !pending.is_empty() {
            let mut lowered = None;
            for (i, stmt) in pending.iter().enumerate() {
                if pending.len() == 1 {
                    self.lower_literal(module, stmt, &mut env)?;
                    lowered = Some(i);
                    break;
                }
                let saved = (self.fb.clone(), env.clone(), self.unbound_seen);
                self.unbound_seen = false;
                match self.lower_literal(module, stmt, &mut env) {
                    Ok(()) => {
                        self.unbound_seen = saved.2;
                        lowered = Some(i);
                        break;
                    }
                    Err(_) if self.unbound_seen => {
                        // Try it again once the others have bound more.
                        (self.fb, env, self.unbound_seen) = saved;
                    }
                    Err(e) => return Err(e),
                }
            }
            match lowered {
                Some(i) => {
                    pending.remove(i);
                }
                // None can go first: the first one's error.
                None => return self.lower_literal(module, pending[0], &mut env),
            }
        }
        self.do_yield(module, y, &mut env)?;
        self.fb.close_to(depth);
        Ok(())
    }

    fn do_yield(&mut self, module: usize, y: &Yield<'m>, env: &mut Env) -> Result<()> {
        match y {
            Yield::Value {
                result,
                value,
                leave,
                conflict,
            } => {
                let v = match value {
                    Some(e) => self.lower_value(module, e, env)?,
                    None => self.const_local(Json::Bool(true)),
                };
                self.fb.emit(Stmt::SetResult {
                    result: *result,
                    value: v,
                    conflict: *conflict,
                });
                if let Some(l) = leave {
                    self.fb.emit(Stmt::Break(*l));
                }
            }
            Yield::SetAdd { set, term } => {
                let v = self.lower_value(module, term, env)?;
                self.fb.emit(Stmt::Call {
                    dst: None,
                    callee: Callee::Rt("rt_set_add"),
                    args: vec![*set, v],
                    defined: false,
                });
            }
            Yield::ArrayPush { arr, term } => {
                let v = self.lower_value(module, term, env)?;
                self.fb.emit(Stmt::Call {
                    dst: None,
                    callee: Callee::Rt("rt_array_push"),
                    args: vec![*arr, v],
                    defined: false,
                });
            }
            Yield::ObjectInsert {
                obj,
                key,
                value,
                conflict,
            } => {
                let k = self.lower_value(module, key, env)?;
                let v = match value {
                    Some(e) => self.lower_value(module, e, env)?,
                    None => self.const_local(Json::Bool(true)),
                };
                self.fb.emit(Stmt::ObjectInsert {
                    obj: *obj,
                    key: k,
                    value: v,
                    conflict: *conflict,
                });
            }
            Yield::Flag { flag, leave } => {
                self.fb.emit(Stmt::SetFlag {
                    dst: *flag,
                    on: true,
                });
                self.fb.emit(Stmt::Break(*leave));
            }
        }
        Ok(())
    }

    /// `flag` is set when `inner` holds (at least once): the shape of `not`,
    /// `every` and `with`.
    fn exists(
        &mut self,
        inner: impl FnOnce(&mut Self, Label, Local) -> Result<()>,
    ) -> Result<Local> {
        let flag = self.fb.local();
        self.fb.emit(Stmt::SetFlag {
            dst: flag,
            on: false,
        });
        let d = self.fb.depth();
        let label = self.fb.open_block();
        inner(self, label, flag)?;
        self.fb.close_to(d);
        Ok(flag)
    }

    fn lower_literal(&mut self, module: usize, stmt: &'m LiteralStmt, env: &mut Env) -> Result<()> {
        if !stmt.with_mods.is_empty() {
            return self.lower_with(module, stmt, env);
        }
        self.lower_plain_literal(module, &stmt.literal, env)
    }

    fn lower_plain_literal(
        &mut self,
        module: usize,
        literal: &'m Literal,
        env: &mut Env,
    ) -> Result<()> {
        match literal {
            Literal::SomeVars { vars, .. } => {
                for v in vars {
                    // Declared, unbound: shadows rules of the same name.
                    env.insert(v.text().to_string(), Local::MAX);
                }
            }
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                let coll = self.lower_value(module, collection, env)?;
                // As in regorus, `some ... in` over a scalar is an error.
                let msg = self.msg("`some .. in` needs an array, set or object");
                self.fb.emit(Stmt::Collection { local: coll, msg });
                let (k, v) = self.fb.open_scan(coll);
                if let Some(key) = key {
                    self.unify_pattern(module, key, k, env, true)?;
                }
                self.unify_pattern(module, value, v, env, true)?;
            }
            Literal::Expr { expr, .. } => self.lower_test(module, expr, env)?,
            Literal::NotExpr { expr, .. } => {
                let outer = env.clone();
                let flag = self.exists(|lw, label, flag| {
                    let mut inner = outer.clone();
                    lw.lower_test(module, expr, &mut inner)?;
                    lw.do_yield(module, &Yield::Flag { flag, leave: label }, &mut inner)
                })?;
                self.fb.emit(Stmt::FlagClear(flag));
            }
            Literal::Every {
                key,
                value,
                domain,
                query,
                ..
            } => {
                // An undefined domain fails (as in regorus); then, a
                // counterexample: an element for which the query fails.
                let coll = self.lower_value(module, domain, env)?;
                let outer = env.clone();
                let flag = self.exists(|lw, label, flag| {
                    let mut inner = outer.clone();
                    let (k, v) = lw.fb.open_scan(coll);
                    if let Some(key) = key {
                        inner.insert(key.text().to_string(), k);
                    }
                    inner.insert(value.text().to_string(), v);
                    let body_env = inner.clone();
                    let holds = lw.exists(|lw, l2, f2| {
                        lw.lower_query(
                            module,
                            query,
                            body_env,
                            &Yield::Flag {
                                flag: f2,
                                leave: l2,
                            },
                        )
                    })?;
                    lw.fb.emit(Stmt::FlagClear(holds));
                    lw.do_yield(module, &Yield::Flag { flag, leave: label }, &mut inner)
                })?;
                self.fb.emit(Stmt::FlagClear(flag));
            }
        }
        Ok(())
    }

    /// `lit with input.x as v, data.y as w`: the literal is tested (it may
    /// not bind variables) with input or data replaced and the rule caches
    /// set aside, then both are put back.
    fn lower_with(&mut self, module: usize, stmt: &'m LiteralStmt, env: &mut Env) -> Result<()> {
        let mut sets = Vec::new();
        for w in &stmt.with_mods {
            let Some(path) = ref_path(&w.refr) else {
                return Err(unsupported(&w.span, "this `with` target"));
            };
            let root = path[0].as_str();
            if root != "input" && root != "data" {
                return Err(unsupported(&w.span, "`with` on a function"));
            }
            let v = self.lower_value(module, &w.r#as, env)?;
            sets.push((root == "input", path[1..].to_vec(), v));
        }
        let old_input = self.rt("rt_input", vec![]);
        let old_data = self.rt("rt_data", vec![]);
        for (is_input, path, v) in &sets {
            let cur = if *is_input {
                self.rt("rt_input", vec![])
            } else {
                self.rt("rt_data", vec![])
            };
            let new = if path.is_empty() {
                *v
            } else {
                let keys = path.iter().map(|p| Json::String(p.clone())).collect();
                let p = self.const_local(Json::Array(keys));
                self.rt("rt_upsert", vec![cur, p, *v])
            };
            self.fb.emit(Stmt::Call {
                dst: None,
                callee: Callee::Rt(if *is_input {
                    "rt_set_input"
                } else {
                    "rt_set_data"
                }),
                args: vec![new],
                defined: false,
            });
        }
        let id = self.with_sites;
        self.with_sites += 1;
        self.fb.emit(Stmt::CachesSave { id });
        let outer = env.clone();
        let flag = self.exists(|lw, label, flag| {
            let mut inner = outer.clone();
            lw.lower_plain_literal(module, &stmt.literal, &mut inner)?;
            if inner.keys().any(|name| !outer.contains_key(name)) {
                return Err(unsupported(
                    &stmt.span,
                    "a `with` literal that binds variables",
                ));
            }
            lw.do_yield(module, &Yield::Flag { flag, leave: label }, &mut inner)
        })?;
        self.fb.emit(Stmt::CachesRestore { id });
        for (name, old) in [("rt_set_input", old_input), ("rt_set_data", old_data)] {
            self.fb.emit(Stmt::Call {
                dst: None,
                callee: Callee::Rt(name),
                args: vec![old],
                defined: false,
            });
        }
        self.fb.emit(Stmt::Defined(flag));
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Expressions.

    /// An expression as a literal: fails unless it holds.
    fn lower_test(&mut self, module: usize, e: &'m Expr, env: &mut Env) -> Result<()> {
        match e {
            Expr::AssignExpr { op, lhs, rhs, .. } => match op {
                AssignOp::ColEq => {
                    let v = self.lower_value(module, rhs, env)?;
                    self.check_declarable(lhs, env)?;
                    self.unify_pattern(module, lhs, v, env, true)
                }
                AssignOp::Eq => {
                    if self.has_unbound(module, lhs, env) && !self.has_unbound(module, rhs, env) {
                        let v = self.lower_value(module, rhs, env)?;
                        self.unify_pattern(module, lhs, v, env, false)
                    } else if self.has_unbound(module, rhs, env) {
                        let v = self.lower_value(module, lhs, env)?;
                        self.unify_pattern(module, rhs, v, env, false)
                    } else {
                        let a = self.lower_value(module, lhs, env)?;
                        let b = self.lower_value(module, rhs, env)?;
                        self.fb.emit(Stmt::Check(Cond::Cmp(Cmp::Eq, a, b)));
                        Ok(())
                    }
                }
            },
            Expr::BoolExpr { op, lhs, rhs, .. } => {
                let a = self.lower_value(module, lhs, env)?;
                let b = self.lower_value(module, rhs, env)?;
                self.fb.emit(Stmt::Check(Cond::Cmp(cmp_of(op), a, b)));
                Ok(())
            }
            Expr::Membership { .. } => {
                let cond = self.lower_membership(module, e, env)?;
                self.fb.emit(Stmt::Check(cond));
                Ok(())
            }
            // `walk(x, [path, value])`: a relation, over the pairs of
            // builtin:walk.
            Expr::Call { fcn, params, .. }
                if call_name(fcn).as_deref() == Some("walk") && params.len() == 2 =>
            {
                let x = self.lower_value(module, &params[0], env)?;
                let pairs = self.call(Callee::Builtin("walk".into()), vec![x], true);
                let (_, pair) = self.fb.open_scan(pairs);
                self.unify_pattern(module, &params[1], pair, env, false)
            }
            _ => {
                let v = self.lower_value(module, e, env)?;
                self.fb.emit(Stmt::Truthy(v));
                Ok(())
            }
        }
    }

    fn check_declarable(&self, lhs: &Expr, env: &Env) -> Result<()> {
        let mut bad = None;
        visit_vars(lhs, &mut |name, s| {
            if name != "_" && env.get(name).is_some_and(|l| *l != Local::MAX) && bad.is_none() {
                bad = Some((name.to_string(), s.clone()));
            }
        });
        match bad {
            Some((name, s)) => Err(err(&s, &format!("var {name} assigned above"))),
            None => Ok(()),
        }
    }

    fn lower_membership(&mut self, module: usize, e: &'m Expr, env: &mut Env) -> Result<Cond> {
        let Expr::Membership {
            key,
            value,
            collection,
            ..
        } = e
        else {
            unreachable!()
        };
        let coll = self.lower_value(module, collection, env)?;
        let v = self.lower_value(module, value, env)?;
        Ok(match key {
            Some(k) => {
                let k = self.lower_value(module, k, env)?;
                Cond::Member2(k, v, coll)
            }
            None => Cond::Member(v, coll),
        })
    }

    /// Whether a pattern has variables that are not bound (and would be
    /// bound by unifying it).
    fn has_unbound(&self, module: usize, e: &Expr, env: &Env) -> bool {
        let scope = &self.scopes[module];
        match e {
            Expr::Var { span, .. } => {
                let n = span.text();
                n == "_"
                    || env.get(n).is_some_and(|l| *l == Local::MAX)
                    || (!env.contains_key(n) && !self.is_global_name(scope, n))
            }
            Expr::Array { items, .. } => items.iter().any(|i| self.has_unbound(module, i, env)),
            Expr::Object { fields, .. } => fields
                .iter()
                .any(|(_, _, v)| self.has_unbound(module, v, env)),
            _ => false,
        }
    }

    fn is_global_name(&self, scope: &Scope, n: &str) -> bool {
        if n == "input" || n == "data" || scope.imports.contains_key(n) {
            return true;
        }
        let mut p = scope.package.clone();
        p.push(n.to_string());
        self.rules
            .range(p.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&p))
    }

    /// Binds a pattern to the value in `v`: unbound variables are bound,
    /// arrays are matched element by element, anything else is compared.
    /// With `declare`, variables are new (`:=`, `some`, parameters).
    fn unify_pattern(
        &mut self,
        module: usize,
        p: &'m Expr,
        v: Local,
        env: &mut Env,
        declare: bool,
    ) -> Result<()> {
        match p {
            Expr::Var { span, .. } => {
                let n = span.text();
                if n == "_" {
                    return Ok(());
                }
                let bound = env.get(n).copied().filter(|l| *l != Local::MAX);
                let global = !env.contains_key(n) && self.is_global_name(&self.scopes[module], n);
                if declare || (bound.is_none() && !global) {
                    env.insert(n.to_string(), v);
                    return Ok(());
                }
                let cur = self.lower_value(module, p, env)?;
                self.fb.emit(Stmt::Check(Cond::Cmp(Cmp::Eq, cur, v)));
                Ok(())
            }
            Expr::Array { items, .. } if self.has_unbound(module, p, env) || declare => {
                self.fb.emit(Stmt::ShapeOf {
                    local: v,
                    object: false,
                    len: items.len() as u32,
                });
                for (i, item) in items.iter().enumerate() {
                    let idx = self.const_local(Json::from(i));
                    let el = self.call(Callee::Rt("rt_get"), vec![v, idx], true);
                    self.unify_pattern(module, item, el, env, declare)?;
                }
                Ok(())
            }
            Expr::Object { fields, .. } if self.has_unbound(module, p, env) || declare => {
                // Objects unify when they have the same keys.
                self.fb.emit(Stmt::ShapeOf {
                    local: v,
                    object: true,
                    len: fields.len() as u32,
                });
                for (_, k, val) in fields {
                    let Some(kc) = scalar(k) else {
                        return Err(unsupported(
                            span_of(k),
                            "a non-constant key in an object pattern",
                        ));
                    };
                    let kl = self.const_local(kc);
                    let el = self.call(Callee::Rt("rt_get"), vec![v, kl], true);
                    self.unify_pattern(module, val, el, env, declare)?;
                }
                Ok(())
            }
            _ => {
                let cur = self.lower_value(module, p, env)?;
                self.fb.emit(Stmt::Check(Cond::Cmp(Cmp::Eq, cur, v)));
                Ok(())
            }
        }
    }

    /// An expression's value (a defined local); undefined fails.
    fn lower_value(&mut self, module: usize, e: &'m Expr, env: &mut Env) -> Result<Local> {
        if let Some(c) = constant(e) {
            return Ok(self.const_local(c));
        }
        match e {
            Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                self.lower_ref(module, e, env)
            }
            Expr::Array { items, .. } => {
                self.collection(module, "rt_array_new", "rt_array_push", items, env)
            }
            Expr::Set { items, .. } => {
                self.collection(module, "rt_set_new", "rt_set_add", items, env)
            }
            Expr::Object { fields, .. } => {
                let obj = self.rt("rt_object_new", vec![]);
                let conflict = self.msg(OBJ_CONFLICT);
                for (_, k, v) in fields {
                    let k = self.lower_value(module, k, env)?;
                    let v = self.lower_value(module, v, env)?;
                    self.fb.emit(Stmt::ObjectInsert {
                        obj,
                        key: k,
                        value: v,
                        conflict,
                    });
                }
                Ok(obj)
            }
            Expr::ArrayCompr { term, query, .. } => {
                let arr = self.rt("rt_array_new", vec![]);
                self.comprehension(module, query, env, &Yield::ArrayPush { arr, term })?;
                Ok(arr)
            }
            Expr::SetCompr { term, query, .. } => {
                let set = self.rt("rt_set_new", vec![]);
                self.comprehension(module, query, env, &Yield::SetAdd { set, term })?;
                Ok(set)
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                let obj = self.rt("rt_object_new", vec![]);
                let conflict = self.msg(OBJ_CONFLICT);
                self.comprehension(
                    module,
                    query,
                    env,
                    &Yield::ObjectInsert {
                        obj,
                        key,
                        value: Some(value),
                        conflict,
                    },
                )?;
                Ok(obj)
            }
            Expr::Call {
                fcn, params, span, ..
            } => self.lower_call(module, fcn, params, span, env),
            Expr::UnaryExpr { span, .. } => {
                Err(err(span, "unary - can only be used with numeric literals"))
            }
            Expr::BinExpr { op, lhs, rhs, .. } => {
                let a = self.lower_value(module, lhs, env)?;
                let b = self.lower_value(module, rhs, env)?;
                let name = match op {
                    BinOp::Union => "or",
                    BinOp::Intersection => "and",
                };
                Ok(self.call(Callee::Builtin(name.into()), vec![a, b], true))
            }
            Expr::ArithExpr { op, lhs, rhs, .. } => {
                let a = self.lower_value(module, lhs, env)?;
                let b = self.lower_value(module, rhs, env)?;
                let name = match op {
                    ArithOp::Add => "plus",
                    ArithOp::Sub => "minus",
                    ArithOp::Mul => "mul",
                    ArithOp::Div => "div",
                    ArithOp::Mod => "rem",
                };
                Ok(self.call(Callee::Builtin(name.into()), vec![a, b], true))
            }
            Expr::BoolExpr { op, lhs, rhs, .. } => {
                let a = self.lower_value(module, lhs, env)?;
                let b = self.lower_value(module, rhs, env)?;
                let dst = self.fb.local();
                self.fb.emit(Stmt::Bool {
                    dst,
                    cond: Cond::Cmp(cmp_of(op), a, b),
                });
                Ok(dst)
            }
            Expr::Membership { .. } => {
                let cond = self.lower_membership(module, e, env)?;
                let dst = self.fb.local();
                self.fb.emit(Stmt::Bool { dst, cond });
                Ok(dst)
            }
            Expr::AssignExpr { span, .. } => {
                Err(unsupported(span, "an assignment used as a value"))
            }
            other => Err(unsupported(span_of(other), "this expression")),
        }
    }

    /// An array or set literal: `new()`, then `add(coll, item)` for each.
    fn collection(
        &mut self,
        module: usize,
        new: &'static str,
        add: &'static str,
        items: &'m [regorus::unstable::Ref<Expr>],
        env: &mut Env,
    ) -> Result<Local> {
        let coll = self.rt(new, vec![]);
        for i in items {
            let v = self.lower_value(module, i, env)?;
            self.fb.emit(Stmt::Call {
                dst: None,
                callee: Callee::Rt(add),
                args: vec![coll, v],
                defined: false,
            });
        }
        Ok(coll)
    }

    /// A comprehension: its query in a block of its own, over a copy of
    /// the bindings.
    fn comprehension(
        &mut self,
        module: usize,
        q: &'m Query,
        env: &Env,
        y: &Yield<'m>,
    ) -> Result<()> {
        let d = self.fb.depth();
        self.fb.open_block();
        self.lower_query(module, q, env.clone(), y)?;
        self.fb.close_to(d);
        Ok(())
    }

    /// A ref: a variable, `input...`, `data...` (rules and data), or any
    /// expression followed by a path. Unbound variables in the path iterate.
    fn lower_ref(&mut self, module: usize, e: &'m Expr, env: &mut Env) -> Result<Local> {
        let (head, path) = flatten(e);
        let cur;
        match head {
            Expr::Var { span, .. } => {
                let n = span.text();
                match env.get(n).copied() {
                    Some(l) if l != Local::MAX => cur = l,
                    Some(_) => return Err(self.unbound(span, n)),
                    None => {
                        let scope = &self.scopes[module];
                        // input, data, an import, or a rule of the package.
                        let (root, mut full): (&str, Vec<Elem>) = if n == "input" {
                            ("input", Vec::new())
                        } else if n == "data" {
                            ("data", Vec::new())
                        } else if let Some((root, p)) = scope.imports.get(n) {
                            let root = if root == "input" { "input" } else { "data" };
                            (
                                root,
                                p.iter()
                                    .map(|c| Elem::Const(Json::String(c.clone())))
                                    .collect(),
                            )
                        } else if self.is_global_name(scope, n) {
                            let mut p: Vec<Elem> = scope
                                .package
                                .iter()
                                .map(|c| Elem::Const(Json::String(c.clone())))
                                .collect();
                            p.push(Elem::Const(Json::String(n.to_string())));
                            ("data", p)
                        } else {
                            return Err(self.unbound(span, n));
                        };
                        full.extend(path);
                        if root == "input" {
                            cur = self.rt("rt_input", vec![]);
                            self.fb.emit(Stmt::Defined(cur));
                            return self.walk(module, cur, &full, env);
                        }
                        return self.lower_data_ref(module, full, span, env);
                    }
                }
            }
            other => {
                cur = self.lower_value(module, other, env)?;
            }
        }
        self.walk(module, cur, &path, env)
    }

    /// `data` followed by a path: a rule (then the rest of the path), the
    /// document of a prefix of rules, or data.
    fn lower_data_ref(
        &mut self,
        module: usize,
        path: Vec<Elem<'m>>,
        span: &Span,
        env: &mut Env,
    ) -> Result<Local> {
        let mut consts: Vec<String> = Vec::new();
        for el in &path {
            match el {
                Elem::Const(Json::String(s)) => consts.push(s.clone()),
                _ => break,
            }
        }
        // A rule on the constant prefix.
        for i in (1..=consts.len()).rev() {
            if let Some(info) = self.rules.get(&consts[..i]) {
                if info.kind == Kind::Function {
                    return Err(err(
                        span,
                        &format!("function data.{} used as a value", consts[..i].join(".")),
                    ));
                }
                let f = self.rule_func(&consts[..i])?;
                let v = self.call(Callee::Func(f), vec![], true);
                return self.walk(module, v, &path[i..], env);
            }
        }
        let under_rules = |lw: &Self, prefix: &[String]| {
            lw.rules
                .range(prefix.to_vec()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(prefix))
        };
        if under_rules(self, &consts) {
            if consts.len() < path.len() {
                return Err(unsupported(
                    span,
                    "iterating over rules (a variable in a ref to a package)",
                ));
            }
            let f = self.doc_func(&consts)?;
            return Ok(self.call(Callee::Func(f), vec![], true));
        }
        let data = self.rt("rt_data", vec![]);
        self.walk(module, data, &path, env)
    }

    /// Walks a path from `cur`: constants and bound variables look up,
    /// unbound variables iterate.
    fn walk(
        &mut self,
        module: usize,
        mut cur: Local,
        path: &[Elem<'m>],
        env: &mut Env,
    ) -> Result<Local> {
        for el in path {
            match el {
                Elem::Const(c) => {
                    let k = self.const_local(c.clone());
                    cur = self.call(Callee::Rt("rt_get"), vec![cur, k], true);
                }
                Elem::Expr(ix) => {
                    if self.has_unbound(module, ix, env) {
                        let (k, v) = self.fb.open_scan(cur);
                        self.unify_pattern(module, ix, k, env, false)?;
                        cur = v;
                    } else {
                        let k = self.lower_value(module, ix, env)?;
                        cur = self.call(Callee::Rt("rt_get"), vec![cur, k], true);
                    }
                }
            }
        }
        Ok(cur)
    }

    fn lower_call(
        &mut self,
        module: usize,
        fcn: &'m Expr,
        params: &'m [regorus::unstable::Ref<Expr>],
        span: &Span,
        env: &mut Env,
    ) -> Result<Local> {
        let Some(name) = call_name(fcn) else {
            return Err(unsupported(span, "this call"));
        };
        // A function of the policy: by name in the package, import or data path.
        if let Some(path) = self.function_path(module, &name) {
            let f = self.rule_func(&path)?;
            let mut args = Vec::new();
            for p in params {
                args.push(self.lower_value(module, p, env)?);
            }
            let arity = self.function_arity(&path)? as usize;
            if args.len() != arity {
                return Err(err(
                    span,
                    &format!("{name} takes {arity} arguments, not {}", args.len()),
                ));
            }
            return Ok(self.call(Callee::Func(f), args, true));
        }
        if name == "print" {
            let arr = self.rt("rt_array_new", vec![]);
            for p in params {
                // An undefined argument prints as <undefined>: lowered in a
                // block of its own, the value stays that string.
                let slot = self.const_local(Json::String("<undefined>".into()));
                let d = self.fb.depth();
                self.fb.open_block();
                let mut inner = env.clone();
                let v = self.lower_value(module, p, &mut inner)?;
                self.fb.emit(Stmt::Move { dst: slot, src: v });
                self.fb.close_to(d);
                self.fb.emit(Stmt::Call {
                    dst: None,
                    callee: Callee::Rt("rt_array_push"),
                    args: vec![arr, slot],
                    defined: false,
                });
            }
            self.fb.emit(Stmt::Call {
                dst: None,
                callee: Callee::Rt("rt_print"),
                args: vec![arr],
                defined: false,
            });
            return Ok(self.const_local(Json::Bool(true)));
        }
        // object.get on a data ref with a constant key: the ref itself, so
        // that `object.get(data, ["a", "b"], d)` does not build all of data.
        if name == "object.get" && params.len() == 3 {
            if let Some(v) =
                self.object_get_data(module, &params[0], &params[1], &params[2], env)?
            {
                return Ok(v);
            }
        }
        let Some(arity) = super::builtin_arity(&name) else {
            return Err(err(span, &format!("unknown function {name}")));
        };
        if params.len() != arity as usize {
            return Err(err(
                span,
                &format!("{name} takes {arity} arguments, not {}", params.len()),
            ));
        }
        let mut args = Vec::new();
        for p in params {
            args.push(self.lower_value(module, p, env)?);
        }
        let callee = if self.compiled_builtins.contains(&name) {
            Callee::Builtin(name)
        } else {
            let next = self.host_ids.len() as u32;
            let id = *self.host_ids.entry(name).or_insert(next);
            Callee::Host { id }
        };
        Ok(self.call(callee, args, true))
    }

    fn object_get_data(
        &mut self,
        module: usize,
        obj: &'m Expr,
        key: &'m Expr,
        default: &'m Expr,
        env: &mut Env,
    ) -> Result<Option<Local>> {
        let (head, path) = flatten(obj);
        let Expr::Var { span, .. } = head else {
            return Ok(None);
        };
        if !path
            .iter()
            .all(|e| matches!(e, Elem::Const(Json::String(_))))
            || env.contains_key(span.text())
        {
            return Ok(None);
        }
        let scope = &self.scopes[module];
        let n = span.text();
        let mut full: Vec<String> = if n == "data" {
            Vec::new()
        } else if let Some((root, p)) = scope.imports.get(n) {
            if root != "data" {
                return Ok(None);
            }
            p.clone()
        } else {
            return Ok(None);
        };
        for e in &path {
            if let Elem::Const(Json::String(s)) = e {
                full.push(s.clone());
            }
        }
        let keys: Vec<String> = match constant(key) {
            Some(Json::String(s)) => vec![s],
            Some(Json::Array(a)) if a.iter().all(|k| k.is_string()) => a
                .iter()
                .map(|k| k.as_str().unwrap_or_default().to_string())
                .collect(),
            _ => return Ok(None),
        };
        full.extend(keys);
        // result = default; block { result = data.<full> }
        let dv = self.lower_value(module, default, env)?;
        let result = self.fb.local();
        self.fb.emit(Stmt::Move {
            dst: result,
            src: dv,
        });
        let d = self.fb.depth();
        self.fb.open_block();
        let elems: Vec<Elem> = full
            .into_iter()
            .map(|c| Elem::Const(Json::String(c)))
            .collect();
        let mut inner = env.clone();
        let v = self.lower_data_ref(module, elems, span, &mut inner)?;
        self.fb.emit(Stmt::Move {
            dst: result,
            src: v,
        });
        self.fb.close_to(d);
        Ok(Some(result))
    }

    /// The rule path of a function called `name` from `module`.
    fn function_path(&self, module: usize, name: &str) -> Option<Vec<String>> {
        let scope = &self.scopes[module];
        let parts: Vec<String> = name.split('.').map(str::to_string).collect();
        let candidates: Vec<Vec<String>> = {
            let mut c = Vec::new();
            let mut local = scope.package.clone();
            local.extend(parts.iter().cloned());
            c.push(local);
            if let Some((root, p)) = scope.imports.get(&parts[0]) {
                if root == "data" {
                    let mut v = p.clone();
                    v.extend(parts[1..].iter().cloned());
                    c.push(v);
                }
            }
            if parts[0] == "data" {
                c.push(parts[1..].to_vec());
            }
            c
        };
        candidates
            .into_iter()
            .find(|p| self.rules.get(p).is_some_and(|i| i.kind == Kind::Function))
    }
}

fn cmp_of(op: &BoolOp) -> Cmp {
    match op {
        BoolOp::Eq => Cmp::Eq,
        BoolOp::Ne => Cmp::Ne,
        BoolOp::Lt => Cmp::Lt,
        BoolOp::Le => Cmp::Le,
        BoolOp::Gt => Cmp::Gt,
        BoolOp::Ge => Cmp::Ge,
    }
}

/// Calls `f` with each variable of a pattern.
fn visit_vars(e: &Expr, f: &mut impl FnMut(&str, &Span)) {
    match e {
        Expr::Var { span, .. } => f(span.text(), span),
        Expr::Array { items, .. } => items.iter().for_each(|i| visit_vars(i, f)),
        Expr::Object { fields, .. } => fields.iter().for_each(|(_, _, v)| visit_vars(v, f)),
        _ => {}
    }
}
