//! The plan: a policy lowered to functions of statements over locals, the
//! shape of OPA's planner IR. Each local holds a value's address (0:
//! undefined). A statement that does not hold *fails*: control leaves the
//! innermost enclosing [`Stmt::Block`] (or goes on with the next element of
//! the innermost [`Stmt::Scan`]). Code generation ([`super::codegen`]) maps
//! blocks, scans and breaks onto Wasm's structured control flow.

/// A local of a plan function (its parameters come first).
pub type Local = u32;
/// A block that [`Stmt::Break`] can leave.
pub type Label = u32;
/// A function of the plan.
pub type FuncId = u32;

/// What a call calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Callee {
    /// A runtime operation (`rt_get`, ...).
    Rt(&'static str),
    /// A builtin compiled into the runtime: export `builtin:<name>`.
    Builtin(String),
    /// A builtin the host provides: `rt_host<N>(id, ...)`.
    Host { id: u32 },
    /// A function of the plan.
    Func(FuncId),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition over locals.
#[derive(Debug, Clone)]
pub enum Cond {
    /// `a <op> b` in Rego's order and equality.
    Cmp(Cmp, Local, Local),
    /// `x in coll`.
    Member(Local, Local),
    /// `k, v in coll`.
    Member2(Local, Local, Local),
}

#[derive(Debug, Clone)]
pub enum Stmt {
    /// `dst = consts[idx]`.
    Const { dst: Local, idx: u32 },
    /// `dst = callee(args)`; with `defined`, fails when the result is
    /// undefined.
    Call {
        dst: Option<Local>,
        callee: Callee,
        args: Vec<Local>,
        defined: bool,
    },
    /// `dst = src`.
    Move { dst: Local, src: Local },
    /// `dst = 0` (undefined; also a cleared flag) or 1 (a set flag).
    SetFlag { dst: Local, on: bool },
    /// Fails when `local` is undefined.
    Defined(Local),
    /// Fails when `local` is undefined or `false`.
    Truthy(Local),
    /// Fails unless the condition holds.
    Check(Cond),
    /// `dst = true` or `false` by the condition.
    Bool { dst: Local, cond: Cond },
    /// Fails unless `local` is an array (or, with `object`, an object) of
    /// `len` elements.
    ShapeOf {
        local: Local,
        object: bool,
        len: u32,
    },
    /// Ends the evaluation with the error `msg` (a string constant) unless
    /// `local` is an array, set or object.
    Collection { local: Local, msg: u32 },
    /// Fails unless the flag is clear.
    FlagClear(Local),
    /// A block: a failure inside leaves it, and control goes on after it.
    Block { label: Label, body: Vec<Stmt> },
    /// For each element of `coll` (array index/element, object key/value,
    /// set element/element), with `key` and `val` set: `body`. A failure in
    /// the body goes on with the next element. Nothing happens for a value
    /// that is not a collection.
    Scan {
        coll: Local,
        key: Local,
        val: Local,
        body: Vec<Stmt>,
    },
    /// Leaves the block `label`, which must enclose this statement.
    Break(Label),
    /// The value of a complete rule or function: when `result` already
    /// holds a different value, the evaluation ends with the error `conflict`
    /// (a string constant); otherwise `result = value`.
    SetResult {
        result: Local,
        value: Local,
        conflict: u32,
    },
    /// Inserts into an object being built; a key there with another value
    /// ends the evaluation with the error `conflict`.
    ObjectInsert {
        obj: Local,
        key: Local,
        value: Local,
        conflict: u32,
    },
    /// Ends the evaluation with the error message `msg` (a string constant).
    Abort { msg: u32 },
    /// Saves every rule cache (in locals of site `id`) and clears them:
    /// for `with`.
    CachesSave { id: u32 },
    /// Restores the rule caches saved by [`Stmt::CachesSave`] of site `id`.
    CachesRestore { id: u32 },
}

/// A function of the plan: parameters are locals `0..params`; the function
/// returns `result` (0 for undefined).
#[derive(Debug, Clone, Default)]
pub struct Func {
    /// For messages and the name section.
    pub name: String,
    pub params: u32,
    pub locals: u32,
    pub body: Vec<Stmt>,
    pub result: Local,
    /// A complete rule, partial set or object: computed once per evaluation.
    pub cached: bool,
}

/// A lowered policy.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub funcs: Vec<Func>,
    /// The function of each entrypoint, in entrypoint order.
    pub entrypoints: Vec<FuncId>,
    /// Constants: JSON values, in the bundle.
    pub consts: Vec<serde_json::Value>,
    /// Builtins delegated to the host, by id.
    pub host_builtins: Vec<(String, u8)>,
}

impl Stmt {
    /// Calls `f` on this statement and every statement nested in it.
    pub fn visit(&self, f: &mut impl FnMut(&Stmt)) {
        f(self);
        match self {
            Stmt::Block { body, .. } | Stmt::Scan { body, .. } => {
                for s in body {
                    s.visit(f);
                }
            }
            _ => {}
        }
    }
}

impl Plan {
    /// Every callee of the plan (runtime operations and builtins the code
    /// generator will call).
    pub fn callees(&self) -> std::collections::BTreeSet<Callee> {
        let mut out = std::collections::BTreeSet::new();
        for f in &self.funcs {
            for s in &f.body {
                s.visit(&mut |s| {
                    if let Stmt::Call { callee, .. } = s {
                        out.insert(callee.clone());
                    }
                });
            }
        }
        out
    }
}
