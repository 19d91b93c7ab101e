//! Code generation and linking: the plan's functions become Wasm functions
//! inside the runtime module (crates/rego-runtime), in place of its import
//! `wasmlayer.plan_eval`, and every runtime function the result does not
//! reach is dropped.
//!
//! Reachability starts from the ABI exports, the start function and the
//! function table, plus the runtime exports the plan calls (`rt_*`,
//! `builtin:*`); every other runtime export is removed, so a policy carries
//! only the builtins it calls. Functions are renumbered: imports first (less
//! `plan_eval`), then the runtime functions kept, then the plan's, the first
//! of which is `plan_eval` itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{anyhow, bail, Context};
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, DataCountSection, DataSection, ElementSection, ExportKind,
    ExportSection, Function, FunctionSection, GlobalSection, GlobalType, ImportSection,
    Instruction, Module, StartSection, TypeSection, ValType,
};
use wasmparser::{ExternalKind, Operator, Payload, TypeRef};

use super::plan::{Callee, Cmp, Cond, Func, Label, Local, Plan, Stmt};

/// The module and name of the import the plan replaces.
const PLAN_MODULE: &str = "wasmlayer";
const PLAN_EVAL: &str = "plan_eval";

/// Runtime exports that are the runtime's own C library functions
/// (crates/rego-runtime/src/mem.rs), never the module's.
const RUNTIME_LIBC: &[&str] = &["memcmp", "bcmp"];

/// What the runtime exports: builtins compiled in and operations.
pub struct RuntimeInfo {
    /// `builtin:<name>` exports, by Rego name.
    pub builtins: BTreeSet<String>,
}

pub fn runtime_info(runtime: &[u8]) -> anyhow::Result<RuntimeInfo> {
    let mut builtins = BTreeSet::new();
    for payload in wasmparser::Parser::new(0).parse_all(runtime) {
        if let Payload::ExportSection(s) = payload? {
            for e in s {
                let e = e?;
                if let Some(name) = e.name.strip_prefix("builtin:") {
                    builtins.insert(name.to_string());
                }
            }
        }
    }
    Ok(RuntimeInfo { builtins })
}

/// The export a callee calls (None for plan functions).
fn export_name(c: &Callee) -> Option<String> {
    match c {
        Callee::Rt(n) => Some((*n).to_string()),
        Callee::Builtin(n) => Some(format!("builtin:{n}")),
        Callee::Host { .. } => None,
        Callee::Func(_) => None,
    }
}

/// Runtime exports the generated code calls, beyond the plan's calls.
fn required_exports(plan: &Plan) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = ["rt_const", "rt_fail"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for f in &plan.funcs {
        for s in &f.body {
            s.visit(&mut |s| {
                let names: &[&str] = match s {
                    Stmt::Call { callee, args, .. } => {
                        if let Some(n) = export_name(callee) {
                            out.insert(n);
                        }
                        if let Callee::Host { .. } = callee {
                            out.insert(format!("rt_host{}", args.len()));
                        }
                        &[]
                    }
                    Stmt::Truthy(_) => &["rt_is_false"],
                    Stmt::Check(c) | Stmt::Bool { cond: c, .. } => match c {
                        Cond::Cmp(Cmp::Eq | Cmp::Ne, ..) => &["rt_equal"],
                        Cond::Cmp(..) => &["rt_compare"],
                        Cond::Member(..) => &["rt_member"],
                        Cond::Member2(..) => &["rt_member2"],
                    },
                    Stmt::ShapeOf { .. } => &["rt_kind", "rt_len"],
                    Stmt::Collection { .. } => &["rt_len"],
                    Stmt::Scan { .. } => &["rt_len", "rt_key_at", "rt_val_at"],
                    Stmt::SetResult { .. } => &["rt_equal"],
                    Stmt::ObjectInsert { .. } => &["rt_object_insert"],
                    _ => &[],
                };
                for n in names {
                    out.insert((*n).to_string());
                }
            });
        }
    }
    out
}

struct Parsed<'a> {
    types: Vec<wasmparser::FuncType>,
    /// (module, name, type) of each import.
    imports: Vec<wasmparser::Import<'a>>,
    imported_funcs: u32,
    imported_globals: u32,
    /// Type index of each defined function.
    funcs: Vec<u32>,
    bodies: Vec<wasmparser::FunctionBody<'a>>,
    exports: Vec<wasmparser::Export<'a>>,
    globals: Option<wasmparser::GlobalSectionReader<'a>>,
    tables: Option<wasmparser::TableSectionReader<'a>>,
    elements: Option<wasmparser::ElementSectionReader<'a>>,
    data: Option<wasmparser::DataSectionReader<'a>>,
    data_count: Option<u32>,
    start: Option<u32>,
    plan_import: u32,
}

fn parse(runtime: &[u8]) -> anyhow::Result<Parsed<'_>> {
    let mut p = Parsed {
        types: Vec::new(),
        imports: Vec::new(),
        imported_funcs: 0,
        imported_globals: 0,
        funcs: Vec::new(),
        bodies: Vec::new(),
        exports: Vec::new(),
        globals: None,
        tables: None,
        elements: None,
        data: None,
        data_count: None,
        start: None,
        plan_import: u32::MAX,
    };
    for payload in wasmparser::Parser::new(0).parse_all(runtime) {
        match payload? {
            Payload::TypeSection(s) => {
                for ty in s.into_iter_err_on_gc_types() {
                    p.types.push(ty?);
                }
            }
            Payload::ImportSection(s) => {
                for imp in s.into_imports() {
                    let imp = imp?;
                    match imp.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => {
                            if imp.module == PLAN_MODULE && imp.name == PLAN_EVAL {
                                p.plan_import = p.imported_funcs;
                            }
                            p.imported_funcs += 1;
                        }
                        TypeRef::Global(_) => p.imported_globals += 1,
                        _ => {}
                    }
                    p.imports.push(imp);
                }
            }
            Payload::FunctionSection(s) => {
                for f in s {
                    p.funcs.push(f?);
                }
            }
            Payload::TableSection(s) => p.tables = Some(s),
            Payload::GlobalSection(s) => p.globals = Some(s),
            Payload::ExportSection(s) => {
                for e in s {
                    p.exports.push(e?);
                }
            }
            Payload::StartSection { func, .. } => p.start = Some(func),
            Payload::ElementSection(s) => p.elements = Some(s),
            Payload::DataCountSection { count, .. } => p.data_count = Some(count),
            Payload::DataSection(s) => p.data = Some(s),
            Payload::CodeSectionEntry(body) => p.bodies.push(body),
            Payload::MemorySection(_) | Payload::TagSection(_) => {
                bail!("the runtime must import its memory and use no tags")
            }
            _ => {}
        }
    }
    if p.plan_import == u32::MAX {
        bail!("the runtime does not import {PLAN_MODULE}.{PLAN_EVAL}");
    }
    Ok(p)
}

/// Calls of a function body (`call`, `return_call`, `ref.func`).
fn calls(body: &wasmparser::FunctionBody<'_>, out: &mut Vec<u32>) -> anyhow::Result<()> {
    let mut ops = body.get_operators_reader()?;
    while !ops.eof() {
        match ops.read()? {
            Operator::Call { function_index }
            | Operator::ReturnCall { function_index }
            | Operator::RefFunc { function_index } => out.push(function_index),
            _ => {}
        }
    }
    Ok(())
}

struct Remap {
    funcs: HashMap<u32, u32>,
}

impl Reencode for Remap {
    type Error = anyhow::Error;

    fn function_index(&mut self, func: u32) -> Result<u32, reencode::Error<Self::Error>> {
        self.funcs.get(&func).copied().ok_or_else(|| {
            reencode::Error::UserError(anyhow!("function {func} was dropped but is used"))
        })
    }
}

fn val_types(v: &[wasmparser::ValType]) -> anyhow::Result<Vec<ValType>> {
    v.iter()
        .map(|t| match t {
            wasmparser::ValType::I32 => Ok(ValType::I32),
            wasmparser::ValType::I64 => Ok(ValType::I64),
            wasmparser::ValType::F32 => Ok(ValType::F32),
            wasmparser::ValType::F64 => Ok(ValType::F64),
            other => bail!("unsupported value type {other:?} in the runtime"),
        })
        .collect()
}

/// Links the plan into the runtime. The result still imports the bundle
/// functions (`wasmlayer.bundle_len`, `bundle_copy`).
pub fn link(runtime: &[u8], plan: &Plan, cached: &[u32]) -> anyhow::Result<Vec<u8>> {
    let p = parse(runtime)?;
    let export_index: HashMap<&str, (ExternalKind, u32)> = p
        .exports
        .iter()
        .map(|e| (e.name, (e.kind, e.index)))
        .collect();
    let required = required_exports(plan);

    // Reachability. Operations are kept when the plan calls them; the C
    // library functions the runtime defines for itself (Rust exports every
    // `#[no_mangle]` function of a cdylib) only when the runtime calls them.
    let is_op = |name: &str| {
        name.starts_with("rt_") || name.starts_with("builtin:") || RUNTIME_LIBC.contains(&name)
    };
    let mut roots: Vec<u32> = Vec::new();
    for e in &p.exports {
        if e.kind == ExternalKind::Func && !is_op(e.name) {
            roots.push(e.index);
        }
    }
    for name in &required {
        match export_index.get(name.as_str()) {
            Some((ExternalKind::Func, i)) => roots.push(*i),
            _ => bail!("the policy runtime has no export {name}"),
        }
    }
    roots.extend(p.start);
    if let Some(elements) = p.elements.clone() {
        for el in elements {
            if let wasmparser::ElementItems::Functions(fs) = el?.items {
                for f in fs {
                    roots.push(f?);
                }
            } else {
                bail!("unsupported element segment in the runtime");
            }
        }
    }
    let mut live: BTreeSet<u32> = BTreeSet::new();
    let mut scratch = Vec::new();
    while let Some(f) = roots.pop() {
        if !live.insert(f) || f < p.imported_funcs {
            continue;
        }
        let body = p
            .bodies
            .get((f - p.imported_funcs) as usize)
            .context("function index out of range")?;
        scratch.clear();
        calls(body, &mut scratch)?;
        roots.extend(scratch.iter().copied());
    }

    // Numbering.
    let mut map: HashMap<u32, u32> = HashMap::new();
    let mut next = 0u32;
    for i in 0..p.imported_funcs {
        if i != p.plan_import {
            map.insert(i, next);
            next += 1;
        }
    }
    let mut kept: Vec<u32> = Vec::new();
    for f in p.imported_funcs..p.imported_funcs + p.funcs.len() as u32 {
        if live.contains(&f) {
            map.insert(f, next);
            kept.push(f);
            next += 1;
        }
    }
    let plan_base = next;
    map.insert(p.plan_import, plan_base);

    // Types: the runtime's, then one per plan signature (n params -> i32).
    let mut types = TypeSection::new();
    for t in &p.types {
        types
            .ty()
            .function(val_types(t.params())?, val_types(t.results())?);
    }
    let mut sig_types: BTreeMap<u32, u32> = BTreeMap::new();
    let mut ntypes = p.types.len() as u32;
    let mut sig = |params: u32, types: &mut TypeSection| -> u32 {
        *sig_types.entry(params).or_insert_with(|| {
            types
                .ty()
                .function(vec![ValType::I32; params as usize], [ValType::I32]);
            ntypes += 1;
            ntypes - 1
        })
    };

    let mut imports = ImportSection::new();
    let mut remap = Remap { funcs: map.clone() };
    for imp in &p.imports {
        if imp.module == PLAN_MODULE && imp.name == PLAN_EVAL {
            continue;
        }
        let ty = remap.entity_type(imp.ty).map_err(|e| anyhow!("{e:?}"))?;
        imports.import(imp.module, imp.name, ty);
    }

    let mut functions = FunctionSection::new();
    for f in &kept {
        functions.function(p.funcs[(f - p.imported_funcs) as usize]);
    }
    // plan_eval (the dispatcher), then the plan's functions.
    let dispatch_ty = sig(1, &mut types);
    functions.function(dispatch_ty);
    for f in &plan.funcs {
        functions.function(sig(f.params, &mut types));
    }

    let mut globals = GlobalSection::new();
    let mut nglobals = p.imported_globals;
    if let Some(g) = p.globals.clone() {
        nglobals += g.count();
        remap
            .parse_global_section(&mut globals, g)
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    let cache_base = nglobals;
    for _ in cached {
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(-1),
        );
    }

    let mut exports = ExportSection::new();
    for e in &p.exports {
        if e.kind == ExternalKind::Func && is_op(e.name) {
            continue;
        }
        let (kind, index) = match e.kind {
            ExternalKind::Func => (
                ExportKind::Func,
                remap
                    .function_index(e.index)
                    .map_err(|e| anyhow!("{e:?}"))?,
            ),
            ExternalKind::Global => (ExportKind::Global, e.index),
            ExternalKind::Table => (ExportKind::Table, e.index),
            ExternalKind::Memory => (ExportKind::Memory, e.index),
            ExternalKind::Tag | ExternalKind::FuncExact => {
                bail!("unsupported export kind in the runtime")
            }
        };
        exports.export(e.name, kind, index);
    }

    let mut code = CodeSection::new();
    for f in &kept {
        let body = p.bodies[(f - p.imported_funcs) as usize].clone();
        remap
            .parse_function_body(&mut code, body)
            .map_err(|e| anyhow!("{e:?}"))?;
    }

    // The generated code.
    let func_of = |name: &str| -> anyhow::Result<(u32, bool)> {
        let (_, old) = export_index
            .get(name)
            .with_context(|| format!("the policy runtime has no export {name}"))?;
        let new = map[old];
        let ty = &p.types[p.funcs[(old - p.imported_funcs) as usize] as usize];
        Ok((new, !ty.results().is_empty()))
    };
    let mut rt: HashMap<String, (u32, bool)> = HashMap::new();
    for name in &required {
        rt.insert(name.clone(), func_of(name)?);
    }
    let g = Gen {
        rt: &rt,
        plan_base: plan_base + 1,
        cache_base,
        cached,
    };
    code.function(&g.dispatcher(plan)?);
    for (i, f) in plan.funcs.iter().enumerate() {
        let cache = cached.iter().position(|c| *c == i as u32);
        code.function(&g.function(f, cache, plan.funcs.len())?);
    }

    let mut module = Module::new();
    module.section(&types);
    module.section(&imports);
    module.section(&functions);
    if let Some(t) = p.tables.clone() {
        let mut tables = wasm_encoder::TableSection::new();
        remap
            .parse_table_section(&mut tables, t)
            .map_err(|e| anyhow!("{e:?}"))?;
        module.section(&tables);
    }
    module.section(&globals);
    module.section(&exports);
    if let Some(s) = p.start {
        module.section(&StartSection {
            function_index: remap.function_index(s).map_err(|e| anyhow!("{e:?}"))?,
        });
    }
    if let Some(el) = p.elements.clone() {
        let mut elements = ElementSection::new();
        remap
            .parse_element_section(&mut elements, el)
            .map_err(|e| anyhow!("{e:?}"))?;
        module.section(&elements);
    }
    if let Some(count) = p.data_count {
        module.section(&DataCountSection { count });
    }
    module.section(&code);
    if let Some(d) = p.data.clone() {
        let mut data = DataSection::new();
        remap
            .parse_data_section(&mut data, d)
            .map_err(|e| anyhow!("{e:?}"))?;
        module.section(&data);
    }
    Ok(module.finish())
}

/// Generates the plan's functions.
struct Gen<'a> {
    /// Runtime function: (index, returns a value).
    rt: &'a HashMap<String, (u32, bool)>,
    /// Index of the plan's first function (after the dispatcher).
    plan_base: u32,
    cache_base: u32,
    cached: &'a [u32],
}

/// A Wasm control frame, innermost last.
#[derive(Clone, Copy)]
enum Ctl {
    /// A block a failure leaves; with a plan label, a break target too.
    Fail(Option<Label>),
    /// A block or loop that is neither.
    Other,
}

struct Emit<'a> {
    g: &'a Gen<'a>,
    ins: Vec<Instruction<'static>>,
    ctl: Vec<Ctl>,
    next_local: u32,
    /// Locals of each `with` site's saved caches.
    with_locals: HashMap<u32, u32>,
}

impl Gen<'_> {
    fn rt(&self, name: &str) -> anyhow::Result<u32> {
        self.rt
            .get(name)
            .map(|(i, _)| *i)
            .with_context(|| format!("runtime function {name} missing"))
    }

    /// `plan_eval(entrypoint)`: clears the rule caches and calls the
    /// entrypoint's function.
    fn dispatcher(&self, plan: &Plan) -> anyhow::Result<Function> {
        let mut f = Function::new([]);
        for k in 0..self.cached.len() as u32 {
            f.instruction(&Instruction::I32Const(-1));
            f.instruction(&Instruction::GlobalSet(self.cache_base + k));
        }
        for (i, ep) in plan.entrypoints.iter().enumerate() {
            f.instruction(&Instruction::LocalGet(0));
            f.instruction(&Instruction::I32Const(i as i32));
            f.instruction(&Instruction::I32Eq);
            f.instruction(&Instruction::If(BlockType::Empty));
            f.instruction(&Instruction::Call(self.plan_base + ep));
            f.instruction(&Instruction::Return);
            f.instruction(&Instruction::End);
        }
        f.instruction(&Instruction::I32Const(0));
        f.instruction(&Instruction::End);
        Ok(f)
    }

    fn function(
        &self,
        func: &Func,
        cache: Option<usize>,
        _nfuncs: usize,
    ) -> anyhow::Result<Function> {
        let mut e = Emit {
            g: self,
            ins: Vec::new(),
            ctl: Vec::new(),
            next_local: func.locals,
            with_locals: HashMap::new(),
        };
        if let Some(k) = cache {
            let g = self.cache_base + k as u32;
            e.ins.push(Instruction::GlobalGet(g));
            e.ins.push(Instruction::I32Const(-1));
            e.ins.push(Instruction::I32Ne);
            e.ins.push(Instruction::If(BlockType::Empty));
            e.ins.push(Instruction::GlobalGet(g));
            e.ins.push(Instruction::Return);
            e.ins.push(Instruction::End);
        }
        // The root block: a failure at the top level returns the result.
        e.ins.push(Instruction::Block(BlockType::Empty));
        e.ctl.push(Ctl::Fail(None));
        e.stmts(&func.body)?;
        e.ctl.pop();
        e.ins.push(Instruction::End);
        if let Some(k) = cache {
            e.ins.push(Instruction::LocalGet(func.result));
            e.ins
                .push(Instruction::GlobalSet(self.cache_base + k as u32));
        }
        e.ins.push(Instruction::LocalGet(func.result));
        e.ins.push(Instruction::End);
        let extra = e.next_local - func.params;
        let mut f = Function::new([(extra, ValType::I32)]);
        for i in &e.ins {
            f.instruction(i);
        }
        Ok(f)
    }
}

/// Whether `l` is read anywhere in `body`.
fn reads(body: &[Stmt], l: Local) -> bool {
    let mut found = false;
    let cond_reads = |c: &Cond| match c {
        Cond::Cmp(_, a, b) | Cond::Member(a, b) => *a == l || *b == l,
        Cond::Member2(a, b, c) => *a == l || *b == l || *c == l,
    };
    for s in body {
        s.visit(&mut |s| {
            found |= match s {
                Stmt::Call { args, .. } => args.contains(&l),
                Stmt::Move { src, .. } => *src == l,
                Stmt::Defined(x) | Stmt::Truthy(x) | Stmt::FlagClear(x) => *x == l,
                Stmt::Collection { local, .. } => *local == l,
                Stmt::ShapeOf { local, .. } => *local == l,
                Stmt::Check(c) | Stmt::Bool { cond: c, .. } => cond_reads(c),
                Stmt::Scan { coll, .. } => *coll == l,
                Stmt::SetResult { result, value, .. } => *result == l || *value == l,
                Stmt::ObjectInsert {
                    obj, key, value, ..
                } => *obj == l || *key == l || *value == l,
                _ => false,
            }
        });
    }
    found
}

impl Emit<'_> {
    fn local(&mut self) -> u32 {
        self.next_local += 1;
        self.next_local - 1
    }

    /// Depth of the innermost failure target.
    fn fail_depth(&self) -> anyhow::Result<u32> {
        self.ctl
            .iter()
            .rev()
            .position(|c| matches!(c, Ctl::Fail(_)))
            .map(|d| d as u32)
            .context("no block to leave")
    }

    fn label_depth(&self, label: Label) -> anyhow::Result<u32> {
        self.ctl
            .iter()
            .rev()
            .position(|c| matches!(c, Ctl::Fail(Some(l)) if *l == label))
            .map(|d| d as u32)
            .context("break to a block that does not enclose it")
    }

    /// Leaves the innermost failure target when the i32 on the stack is
    /// non-zero.
    fn fail_if(&mut self) -> anyhow::Result<()> {
        let d = self.fail_depth()?;
        self.ins.push(Instruction::BrIf(d));
        Ok(())
    }

    fn call_rt(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.g.rt(name)?;
        self.ins.push(Instruction::Call(i));
        Ok(())
    }

    fn get(&mut self, l: Local) {
        self.ins.push(Instruction::LocalGet(l));
    }

    /// Pushes 1 when the condition holds, else 0.
    fn cond(&mut self, c: &Cond) -> anyhow::Result<()> {
        match c {
            Cond::Cmp(op, a, b) => {
                self.get(*a);
                self.get(*b);
                match op {
                    Cmp::Eq => self.call_rt("rt_equal")?,
                    Cmp::Ne => {
                        self.call_rt("rt_equal")?;
                        self.ins.push(Instruction::I32Eqz);
                    }
                    _ => {
                        self.call_rt("rt_compare")?;
                        self.ins.push(Instruction::I32Const(0));
                        self.ins.push(match op {
                            Cmp::Lt => Instruction::I32LtS,
                            Cmp::Le => Instruction::I32LeS,
                            Cmp::Gt => Instruction::I32GtS,
                            _ => Instruction::I32GeS,
                        });
                    }
                }
            }
            Cond::Member(x, coll) => {
                self.get(*coll);
                self.get(*x);
                self.call_rt("rt_member")?;
            }
            Cond::Member2(k, v, coll) => {
                self.get(*coll);
                self.get(*k);
                self.get(*v);
                self.call_rt("rt_member2")?;
            }
        }
        Ok(())
    }

    fn abort(&mut self, msg: u32) -> anyhow::Result<()> {
        self.ins.push(Instruction::I32Const(msg as i32));
        self.call_rt("rt_fail")?;
        self.ins.push(Instruction::Unreachable);
        Ok(())
    }

    fn stmts(&mut self, body: &[Stmt]) -> anyhow::Result<()> {
        for s in body {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> anyhow::Result<()> {
        match s {
            Stmt::Const { dst, idx } => {
                self.ins.push(Instruction::I32Const(*idx as i32));
                self.call_rt("rt_const")?;
                self.ins.push(Instruction::LocalSet(*dst));
            }
            Stmt::Call {
                dst,
                callee,
                args,
                defined,
            } => {
                let returns = match callee {
                    Callee::Func(f) => {
                        for a in args {
                            self.get(*a);
                        }
                        self.ins.push(Instruction::Call(self.g.plan_base + f));
                        true
                    }
                    Callee::Host { id } => {
                        self.ins.push(Instruction::I32Const(*id as i32));
                        for a in args {
                            self.get(*a);
                        }
                        let name = format!("rt_host{}", args.len());
                        self.call_rt(&name)?;
                        true
                    }
                    other => {
                        let name = export_name(other).expect("an export");
                        for a in args {
                            self.get(*a);
                        }
                        let (i, returns) = *self
                            .g
                            .rt
                            .get(&name)
                            .with_context(|| format!("runtime function {name} missing"))?;
                        self.ins.push(Instruction::Call(i));
                        returns
                    }
                };
                match (dst, returns) {
                    (Some(d), true) => {
                        self.ins.push(Instruction::LocalSet(*d));
                        if *defined {
                            self.get(*d);
                            self.ins.push(Instruction::I32Eqz);
                            self.fail_if()?;
                        }
                    }
                    (None, true) => self.ins.push(Instruction::Drop),
                    (None, false) => {}
                    (Some(_), false) => {
                        bail!("a runtime function without a result used as a value")
                    }
                }
            }
            Stmt::Move { dst, src } => {
                self.get(*src);
                self.ins.push(Instruction::LocalSet(*dst));
            }
            Stmt::SetFlag { dst, on } => {
                self.ins.push(Instruction::I32Const(i32::from(*on)));
                self.ins.push(Instruction::LocalSet(*dst));
            }
            Stmt::Defined(l) => {
                self.get(*l);
                self.ins.push(Instruction::I32Eqz);
                self.fail_if()?;
            }
            Stmt::Truthy(l) => {
                self.get(*l);
                self.ins.push(Instruction::I32Eqz);
                self.fail_if()?;
                self.get(*l);
                self.call_rt("rt_is_false")?;
                self.fail_if()?;
            }
            Stmt::Check(c) => {
                self.cond(c)?;
                self.ins.push(Instruction::I32Eqz);
                self.fail_if()?;
            }
            Stmt::Bool { dst, cond } => {
                // consts[1] is true, consts[0] false.
                self.cond(cond)?;
                self.call_rt("rt_const")?;
                self.ins.push(Instruction::LocalSet(*dst));
            }
            Stmt::ShapeOf { local, object, len } => {
                self.get(*local);
                self.call_rt("rt_kind")?;
                // rt_kind: 4 array, 6 object.
                self.ins
                    .push(Instruction::I32Const(if *object { 6 } else { 4 }));
                self.ins.push(Instruction::I32Ne);
                self.fail_if()?;
                self.get(*local);
                self.call_rt("rt_len")?;
                self.ins.push(Instruction::I32Const(*len as i32));
                self.ins.push(Instruction::I32Ne);
                self.fail_if()?;
            }
            Stmt::FlagClear(l) => {
                self.get(*l);
                self.fail_if()?;
            }
            Stmt::Collection { local, msg } => {
                self.get(*local);
                self.call_rt("rt_len")?;
                self.ins.push(Instruction::I32Const(0));
                self.ins.push(Instruction::I32LtS);
                self.ins.push(Instruction::If(BlockType::Empty));
                self.abort(*msg)?;
                self.ins.push(Instruction::End);
            }
            Stmt::Block { label, body } => {
                self.ins.push(Instruction::Block(BlockType::Empty));
                self.ctl.push(Ctl::Fail(Some(*label)));
                self.stmts(body)?;
                self.ctl.pop();
                self.ins.push(Instruction::End);
            }
            Stmt::Scan {
                coll,
                key,
                val,
                body,
            } => {
                let (i, n) = (self.local(), self.local());
                self.get(*coll);
                self.call_rt("rt_len")?;
                self.ins.push(Instruction::LocalSet(n));
                self.ins.push(Instruction::I32Const(0));
                self.ins.push(Instruction::LocalSet(i));
                self.ins.push(Instruction::Block(BlockType::Empty));
                self.ctl.push(Ctl::Other);
                self.ins.push(Instruction::Loop(BlockType::Empty));
                self.ctl.push(Ctl::Other);
                self.get(i);
                self.get(n);
                self.ins.push(Instruction::I32GeS);
                self.ins.push(Instruction::BrIf(1));
                for (l, f) in [(*key, "rt_key_at"), (*val, "rt_val_at")] {
                    if reads(body, l) {
                        self.get(*coll);
                        self.get(i);
                        self.call_rt(f)?;
                        self.ins.push(Instruction::LocalSet(l));
                    }
                }
                self.get(i);
                self.ins.push(Instruction::I32Const(1));
                self.ins.push(Instruction::I32Add);
                self.ins.push(Instruction::LocalSet(i));
                self.ins.push(Instruction::Block(BlockType::Empty));
                self.ctl.push(Ctl::Fail(None));
                self.stmts(body)?;
                self.ctl.pop();
                self.ins.push(Instruction::End);
                self.ins.push(Instruction::Br(0));
                self.ctl.pop();
                self.ins.push(Instruction::End);
                self.ctl.pop();
                self.ins.push(Instruction::End);
            }
            Stmt::Break(label) => {
                let d = self.label_depth(*label)?;
                self.ins.push(Instruction::Br(d));
            }
            Stmt::SetResult {
                result,
                value,
                conflict,
            } => {
                self.get(*result);
                self.ins.push(Instruction::If(BlockType::Empty));
                self.get(*result);
                self.get(*value);
                self.call_rt("rt_equal")?;
                self.ins.push(Instruction::I32Eqz);
                self.ins.push(Instruction::If(BlockType::Empty));
                self.abort(*conflict)?;
                self.ins.push(Instruction::End);
                self.ins.push(Instruction::End);
                self.get(*value);
                self.ins.push(Instruction::LocalSet(*result));
            }
            Stmt::ObjectInsert {
                obj,
                key,
                value,
                conflict,
            } => {
                self.get(*obj);
                self.get(*key);
                self.get(*value);
                self.call_rt("rt_object_insert")?;
                self.ins.push(Instruction::I32Eqz);
                self.ins.push(Instruction::If(BlockType::Empty));
                self.abort(*conflict)?;
                self.ins.push(Instruction::End);
            }
            Stmt::Abort { msg } => self.abort(*msg)?,
            Stmt::CachesSave { id } => {
                let n = self.g.cached.len() as u32;
                let base = self.next_local;
                self.next_local += n;
                self.with_locals.insert(*id, base);
                for k in 0..n {
                    self.ins.push(Instruction::GlobalGet(self.g.cache_base + k));
                    self.ins.push(Instruction::LocalSet(base + k));
                    self.ins.push(Instruction::I32Const(-1));
                    self.ins.push(Instruction::GlobalSet(self.g.cache_base + k));
                }
            }
            Stmt::CachesRestore { id } => {
                let base = *self
                    .with_locals
                    .get(id)
                    .context("caches restored before saved")?;
                for k in 0..self.g.cached.len() as u32 {
                    self.ins.push(Instruction::LocalGet(base + k));
                    self.ins.push(Instruction::GlobalSet(self.g.cache_base + k));
                }
            }
        }
        Ok(())
    }
}
