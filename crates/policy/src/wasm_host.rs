//! A host for policies compiled to WebAssembly with OPA's Wasm ABI
//! (versions 1.0 to 1.3): `opa build -t wasm` output and `wasmlayer policy
//! build` output alike.
//!
//! One instance is kept and reused; the heap is reset to the point after the
//! data document before every evaluation. ABI 1.2+ modules are evaluated with
//! the single-call `opa_eval`; older ones through the `opa_eval_ctx_*` calls.
//! A trap or abort leaves the instance unusable, so the next evaluation gets
//! a fresh one.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use serde_json::Value as Json;
use wasmlayer_core::limits::MemoryLimiter;
use wasmlayer_core::{Error, Limits};
use wasmtime::{
    Caller, Engine, ExternType, Instance, Linker, Memory, MemoryType, Module, Store, TypedFunc, Val,
};

use crate::builtins::{self, HostBuiltin};

pub use crate::document::DEFAULT_TIMEOUT;
/// How often the policy engine's epoch advances: the granularity of timeouts.
pub const EPOCH_TICK: std::time::Duration = wasmlayer_core::epoch::TICK;
/// Fuel for one evaluation, on an engine that meters fuel, when the caller
/// sets no limit: about a billion instructions.
pub const DEFAULT_FUEL: u64 = 1_000_000_000;
/// Linear memory a policy may use when the caller sets no limit.
pub const DEFAULT_MAX_MEMORY: u64 = 256 << 20;

/// An OPA policy bundle or bare module, as read from disk.
#[derive(Debug, Clone)]
pub struct WasmPolicySource {
    pub wasm: Vec<u8>,
    /// The bundle's data document (merged data.json files), or Null.
    pub data: Json,
    /// Entrypoint names the bundle's manifest declares, if any.
    pub manifest_entrypoints: Vec<String>,
}

impl WasmPolicySource {
    /// Reads a bare `.wasm` module or an OPA bundle (`.tar.gz` holding
    /// `/policy.wasm`, `data.json` files and `.manifest`). A bundle is
    /// refused before it is read when the file is larger than
    /// [`MAX_BUNDLE_SIZE`].
    pub fn read(path: &Path) -> Result<WasmPolicySource, Error> {
        let gzipped = {
            let mut magic = [0u8; 2];
            std::fs::File::open(path)
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok_and(|()| magic == [0x1f, 0x8b])
        };
        if gzipped {
            let size = std::fs::metadata(path)
                .map_err(|e| Error::io(path, e))?
                .len();
            if size > MAX_BUNDLE_SIZE {
                return Err(Error::policy(format!(
                    "{}: a bundle of {} is refused: a bundle may hold at most {} once inflated",
                    path.display(),
                    wasmlayer_core::limits::format_size(size),
                    wasmlayer_core::limits::format_size(MAX_BUNDLE_SIZE)
                )));
            }
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        WasmPolicySource::from_bytes(&bytes)
            .map_err(|e| Error::policy(format!("{}: {e}", path.display())))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<WasmPolicySource, String> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            read_bundle(bytes)
        } else if bytes.starts_with(b"\0asm") || is_wat(bytes) {
            Ok(WasmPolicySource {
                wasm: bytes.to_vec(),
                data: Json::Null,
                manifest_entrypoints: vec![],
            })
        } else {
            Err("neither a WebAssembly module nor a gzipped OPA bundle".into())
        }
    }
}

/// WebAssembly text, which the engine compiles like a binary module.
fn is_wat(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes)
        .is_ok_and(|t| matches!(t.trim_start().chars().next(), Some('(' | ';')))
}

/// What a bundle may hold once inflated: its whole tar stream (headers
/// included). A policy's data must fit in the policy's memory
/// ([`DEFAULT_MAX_MEMORY`]), as text and then parsed, so a bundle that
/// could be loaded is well under it.
pub const MAX_BUNDLE_SIZE: u64 = DEFAULT_MAX_MEMORY;

/// How many times its compressed size a bundle may inflate to, once past
/// [`BUNDLE_RATIO_FROM`]: policies, Wasm modules and JSON data compress
/// from 3 to 30 times; long runs of one byte, what a decompression bomb is
/// made of, about 1000 times.
pub const MAX_BUNDLE_RATIO: u64 = 200;

/// The ratio is checked once this much has been inflated (a small archive
/// is mostly padding, which compresses far better than its contents).
pub const BUNDLE_RATIO_FROM: u64 = 16 << 20;

/// Counts what is read through it.
struct Counted<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// The inflated stream of a bundle, ended with an error past
/// [`MAX_BUNDLE_SIZE`] or [`MAX_BUNDLE_RATIO`] (the reason is kept in
/// `refused`: the archive reader reports the error in its own words).
struct Capped<R> {
    inner: R,
    inflated: u64,
    compressed: std::rc::Rc<std::cell::Cell<u64>>,
    refused: std::rc::Rc<std::cell::RefCell<Option<String>>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(reason) = self.refused.borrow().as_ref() {
            return Err(std::io::Error::other(reason.clone()));
        }
        let n = self.inner.read(buf)?;
        self.inflated += n as u64;
        let compressed = self.compressed.get().max(1);
        let reason = if self.inflated > MAX_BUNDLE_SIZE {
            Some(format!(
                "the bundle inflates to more than {}, the most a bundle may hold",
                wasmlayer_core::limits::format_size(MAX_BUNDLE_SIZE)
            ))
        } else if self.inflated > BUNDLE_RATIO_FROM
            && self.inflated > compressed.saturating_mul(MAX_BUNDLE_RATIO)
        {
            Some(format!(
                "the bundle inflates to more than {MAX_BUNDLE_RATIO} times its compressed size \
                 ({} from {}), which only a decompression bomb does",
                wasmlayer_core::limits::format_size(self.inflated),
                wasmlayer_core::limits::format_size(compressed)
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            *self.refused.borrow_mut() = Some(reason.clone());
            return Err(std::io::Error::other(reason));
        }
        Ok(n)
    }
}

fn read_bundle(bytes: &[u8]) -> Result<WasmPolicySource, String> {
    let compressed = std::rc::Rc::new(std::cell::Cell::new(0));
    let refused = std::rc::Rc::new(std::cell::RefCell::new(None));
    let stream = Capped {
        inner: flate2::read::GzDecoder::new(Counted {
            inner: bytes,
            count: compressed.clone(),
        }),
        inflated: 0,
        compressed,
        refused: refused.clone(),
    };
    // An error of the archive reader is the cap's when the cap ended the
    // stream.
    let why = |e: &dyn std::fmt::Display, what: &str| match refused.borrow().as_ref() {
        Some(reason) => format!("refused: {reason}"),
        None => format!("{what}: {e}"),
    };
    let mut archive = tar::Archive::new(stream);
    let mut wasm: Option<(String, Vec<u8>)> = None;
    let mut manifest: Option<Json> = None;
    let mut data = Json::Object(Default::default());
    let mut declared: u64 = 0;
    let entries = archive
        .entries()
        .map_err(|e| why(&e, "not a valid bundle"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| why(&e, "not a valid bundle"))?;
        let path = entry
            .path()
            .map_err(|e| format!("bad path in bundle: {e}"))?;
        // Entries are read in memory, never unpacked; still, a path that
        // climbs out of the bundle is no bundle's (and would only turn into
        // data under `..` keys).
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!(
                "bad path in bundle: {} leads outside the bundle (`..`)",
                path.display()
            ));
        }
        let path = format!(
            "/{}",
            path.to_string_lossy()
                .trim_start_matches("./")
                .trim_start_matches('/')
        );
        // The sizes the headers declare are checked before the contents
        // are inflated, so that a bomb is refused at its first header.
        declared = declared.saturating_add(entry.size());
        if declared > MAX_BUNDLE_SIZE {
            return Err(format!(
                "refused: {path} takes the bundle past {}, the most a bundle may hold once \
                 inflated ({} in its entries so far)",
                wasmlayer_core::limits::format_size(MAX_BUNDLE_SIZE),
                wasmlayer_core::limits::format_size(declared)
            ));
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let mut contents = Vec::new();
        entry
            .read_to_end(&mut contents)
            .map_err(|e| why(&e, &path))?;
        if path.ends_with(".wasm") {
            if let Some((first, _)) = &wasm {
                if first != "/policy.wasm" && path == "/policy.wasm" {
                    wasm = Some((path, contents));
                }
                continue;
            }
            wasm = Some((path, contents));
        } else if path == "/.manifest" {
            manifest = Some(
                serde_json::from_slice(&contents)
                    .map_err(|e| format!("/.manifest: not valid JSON: {e}"))?,
            );
        } else if path.ends_with("/data.json") {
            let value: Json = serde_json::from_slice(&contents)
                .map_err(|e| format!("{path}: not valid JSON: {e}"))?;
            let dir: Vec<&str> = path
                .trim_end_matches("/data.json")
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            let mut nested = value;
            for key in dir.iter().rev() {
                nested = serde_json::json!({ *key: nested });
            }
            crate::document::add_data(&mut data, nested, &path).map_err(|e| e.to_string())?;
        }
    }
    let (_, wasm) = wasm.ok_or("the bundle holds no policy.wasm (was it built with `-t wasm`?)")?;
    let manifest_entrypoints = manifest
        .as_ref()
        .and_then(|m| m.get("wasm"))
        .and_then(|w| w.as_array())
        .map(|mods| {
            mods.iter()
                .filter_map(|m| {
                    m.get("entrypoint")
                        .and_then(|e| e.as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(WasmPolicySource {
        wasm,
        data,
        manifest_entrypoints,
    })
}

struct HostState {
    limiter: MemoryLimiter,
    builtins: HashMap<i32, HostBuiltin>,
    /// `opa_json_parse`, `opa_json_dump`, `opa_malloc` for builtin calls.
    abi: Option<Abi>,
    /// The message of an `opa_abort` or a failed builtin.
    abort: Option<String>,
    /// A builtin was refused because its result would not fit in memory.
    memory_refused: bool,
    prints: Vec<String>,
}

#[derive(Clone)]
struct Abi {
    memory: Memory,
    malloc: TypedFunc<i32, i32>,
    json_parse: TypedFunc<(i32, i32), i32>,
    json_dump: TypedFunc<i32, i32>,
    heap_ptr_get: TypedFunc<(), i32>,
    heap_ptr_set: TypedFunc<i32, ()>,
    builtins: TypedFunc<(), i32>,
    entrypoints: TypedFunc<(), i32>,
    eval: Eval,
}

#[derive(Clone)]
enum Eval {
    /// ABI 1.2+: `opa_eval(reserved, entrypoint, data, input, input_len, heap_ptr, format)`.
    Fast(TypedFunc<(i32, i32, i32, i32, i32, i32, i32), i32>),
    Ctx {
        new: TypedFunc<(), i32>,
        set_input: TypedFunc<(i32, i32), ()>,
        set_data: TypedFunc<(i32, i32), ()>,
        set_entrypoint: Option<TypedFunc<(i32, i32), ()>>,
        get_result: TypedFunc<i32, i32>,
        eval: TypedFunc<i32, i32>,
    },
}

/// A policy module instantiated and ready to evaluate.
pub struct OpaWasmPolicy {
    engine: Engine,
    module: Module,
    linker: Linker<HostState>,
    memory_type: MemoryType,
    limits: Limits,
    /// Whether the engine meters fuel.
    fuel: bool,
    data: Json,
    /// The ABI version the module declares.
    pub abi_version: (u32, u32),
    entrypoints: BTreeMap<String, i32>,
    builtin_names: Vec<String>,
    /// Boxed: an evaluation takes it out and puts it back.
    live: Option<Box<Live>>,
}

struct Live {
    store: Store<HostState>,
    abi: Abi,
    data_addr: i32,
    /// Where the heap is reset to before each evaluation.
    eval_heap: i32,
}

impl std::fmt::Debug for OpaWasmPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpaWasmPolicy")
            .field("abi_version", &self.abi_version)
            .field("entrypoints", &self.entrypoints)
            .finish()
    }
}

const IMPORTS: &[&str] = &[
    "opa_abort",
    "opa_println",
    "opa_builtin0",
    "opa_builtin1",
    "opa_builtin2",
    "opa_builtin3",
    "opa_builtin4",
];

impl OpaWasmPolicy {
    /// Compiles, checks and instantiates a policy module with `data`
    /// (Null: none). `limits`: memory and fuel per evaluation (defaults
    /// [`DEFAULT_MAX_MEMORY`] and [`DEFAULT_TIMEOUT`], and [`DEFAULT_FUEL`]
    /// on an engine that meters fuel). The module is compiled by `runtime`
    /// (through its compile cache), and the process's epoch ticker drives
    /// its engine, which ends an evaluation past its timeout.
    pub fn new(
        runtime: &wasmlayer_core::Runtime,
        source: &WasmPolicySource,
        data: &Json,
        limits: &Limits,
    ) -> Result<Self, Error> {
        let module = compile(runtime, &source.wasm)?;
        let engine = &module.engine().clone();
        if !wasmlayer_core::epoch::ticker().drive(engine) {
            tracing::warn!("no epoch ticker, so no policy timeouts");
        }
        let mut memory_type = None;
        for import in module.imports() {
            match (import.module(), import.name(), import.ty()) {
                ("env", "memory", ExternType::Memory(m)) => memory_type = Some(m),
                ("env", name, ExternType::Func(_)) if IMPORTS.contains(&name) => {}
                (m, n, _) => {
                    return Err(Error::policy(format!(
                        "not an OPA policy module: it imports `{m}.{n}`, which the OPA Wasm ABI does not define"
                    )))
                }
            }
        }
        let memory_type = memory_type.ok_or_else(|| {
            Error::policy("not an OPA policy module: it does not import `env.memory`")
        })?;
        let mut limits = limits.clone();
        limits.max_memory.get_or_insert(DEFAULT_MAX_MEMORY);
        limits.fuel.get_or_insert(DEFAULT_FUEL);
        limits.timeout.get_or_insert(DEFAULT_TIMEOUT);
        let mut data_doc = source.data.clone();
        if !data.is_null() {
            crate::document::add_data(&mut data_doc, data.clone(), "data")?;
        }
        let linker = host_linker(engine)?;
        let mut policy = OpaWasmPolicy {
            engine: engine.clone(),
            module,
            linker,
            memory_type,
            limits,
            fuel: Store::new(engine, ()).set_fuel(1).is_ok(),
            data: data_doc,
            abi_version: (1, 0),
            entrypoints: BTreeMap::new(),
            builtin_names: Vec::new(),
            live: None,
        };
        policy.instantiate()?;
        Ok(policy)
    }

    /// Entrypoint names (`pkg/rule`) and their ids.
    pub fn entrypoints(&self) -> &BTreeMap<String, i32> {
        &self.entrypoints
    }

    /// The builtins the module asks the host for.
    pub fn builtins(&self) -> &[String] {
        &self.builtin_names
    }

    /// What the last evaluation printed (`opa_println`).
    pub fn prints(&self) -> &[String] {
        self.live
            .as_ref()
            .map(|l| l.store.data().prints.as_slice())
            .unwrap_or_default()
    }

    /// Bytes of linear memory the instance has (it stays put across
    /// evaluations: the heap is reset before each one).
    pub fn memory_size(&self) -> usize {
        self.live
            .as_ref()
            .map(|l| l.abi.memory.data_size(&l.store))
            .unwrap_or(0)
    }

    fn instantiate(&mut self) -> Result<(), Error> {
        self.live = None;
        let mut store = Store::new(
            &self.engine,
            HostState {
                limiter: MemoryLimiter::new(&self.limits),
                builtins: HashMap::new(),
                abi: None,
                abort: None,
                memory_refused: false,
                prints: Vec::new(),
            },
        );
        store.limiter(|s| &mut s.limiter);
        self.refuel(&mut store)?;
        let memory = Memory::new(&mut store, self.memory_type.clone())
            .map_err(|e| self.fail(&store, e, "cannot create the policy's memory"))?;
        let mut linker = self.linker.clone();
        linker
            .define(&store, "env", "memory", memory)
            .map_err(|e| Error::host(format!("{e:#}")))?;
        let instance = linker
            .instantiate(&mut store, &self.module)
            .map_err(|e| self.fail(&store, e, "cannot instantiate the policy"))?;
        self.abi_version = abi_version(&instance, &mut store)?;
        if self.abi_version.0 != 1 {
            return Err(Error::policy(format!(
                "unsupported OPA Wasm ABI version {}.{} (this host speaks 1.x)",
                self.abi_version.0, self.abi_version.1
            )));
        }
        let abi = exports(&instance, &mut store, memory, self.abi_version.1)?;
        store.data_mut().abi = Some(abi.clone());

        // What the module needs and offers.
        let builtins_map = self.call_map(&mut store, &abi, abi.builtins.clone(), "builtins")?;
        let resolved = builtins::resolve(&builtins_map).map_err(Error::policy)?;
        let mut names: Vec<_> = builtins_map.keys().cloned().collect();
        names.sort();
        self.builtin_names = names;
        store.data_mut().builtins = resolved;
        self.entrypoints = self
            .call_map(&mut store, &abi, abi.entrypoints.clone(), "entrypoints")?
            .into_iter()
            .collect();

        // The data document stays below the point the heap is reset to.
        let data_json = serde_json::to_vec(&self.data).unwrap_or_default();
        let data_addr = if self.data.is_null() {
            0
        } else {
            let addr = write_bytes(&mut store, &abi, &data_json)
                .map_err(|e| self.fail(&store, e, "cannot load data"))?;
            let v = abi
                .json_parse
                .call(&mut store, (addr, data_json.len() as i32))
                .map_err(|e| self.fail(&store, e, "cannot load data"))?;
            if v == 0 {
                return Err(Error::policy(
                    "the policy module could not parse the data document",
                ));
            }
            v
        };
        let eval_heap = abi
            .heap_ptr_get
            .call(&mut store, ())
            .map_err(|e| self.fail(&store, e, "heap"))?;
        self.live = Some(Box::new(Live {
            store,
            abi,
            data_addr,
            eval_heap,
        }));
        Ok(())
    }

    /// Gives the next call its time (and fuel) budget.
    fn refuel(&self, store: &mut Store<HostState>) -> Result<(), Error> {
        let timeout = self.limits.timeout.unwrap_or(DEFAULT_TIMEOUT);
        store.set_epoch_deadline((timeout.as_nanos() / EPOCH_TICK.as_nanos()) as u64 + 1);
        if self.fuel {
            store
                .set_fuel(self.limits.fuel.unwrap_or(DEFAULT_FUEL))
                .map_err(|e| Error::host(format!("{e:#}")))?;
        }
        Ok(())
    }

    fn call_map(
        &self,
        store: &mut Store<HostState>,
        abi: &Abi,
        f: TypedFunc<(), i32>,
        what: &str,
    ) -> Result<HashMap<String, i32>, Error> {
        let addr = f
            .call(&mut *store, ())
            .map_err(|e| self.fail(store, e, what))?;
        let json = dump(store, abi, addr).map_err(|e| self.fail(store, e, what))?;
        id_map(&json, what).map_err(Error::policy)
    }

    /// Turns a wasmtime error into ours: an abort's message, a failed
    /// builtin, memory or fuel exhausted, or a trap.
    fn fail(&self, store: &Store<HostState>, e: wasmtime::Error, what: &str) -> Error {
        if store.data().memory_refused {
            return Error::MemoryLimit(crate::memory::MAX_MEMORY);
        }
        if let Some(msg) = &store.data().abort {
            return Error::policy(format!("policy aborted: {msg}"));
        }
        if let Some(msg) = e.downcast_ref::<HostFailure>() {
            return Error::policy(format!("{what}: {}", msg.0));
        }
        match wasmlayer_core::run::classify(e, &self.limits, store.data().limiter.hit()) {
            Error::Trap { kind, .. } => {
                Error::policy(format!("{what}: the policy trapped: {kind}"))
            }
            other => other,
        }
    }

    /// Resolves an entrypoint given as `pkg/rule`, `data.pkg.rule` or an id.
    pub fn entrypoint_id(&self, entrypoint: Option<&str>) -> Result<i32, Error> {
        let Some(name) = entrypoint else {
            return match self.entrypoints.len() {
                1 => Ok(*self.entrypoints.values().next().unwrap()),
                0 => Err(Error::policy("the policy module declares no entrypoints")),
                _ => Err(Error::usage(format!(
                    "the policy has several entrypoints ({}); choose one with --entrypoint",
                    self.entrypoints
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            };
        };
        // The name as the module declares it (as hosts mostly give it),
        // before any normalising.
        if let Some(id) = self.entrypoints.get(name) {
            return Ok(*id);
        }
        let slash = crate::document::slash_entrypoint(name);
        if let Some(id) = self.entrypoints.get(&slash) {
            return Ok(*id);
        }
        if let Ok(id) = name.parse::<i32>() {
            if self.entrypoints.values().any(|v| *v == id) {
                return Ok(id);
            }
        }
        Err(Error::policy(format!(
            "entrypoint {name} is not in the policy module (it has: {})",
            self.entrypoints
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// Evaluates an entrypoint with `input` (None: undefined) and returns
    /// OPA's result set (`[{"result": v}]`, or `[]`).
    pub fn eval(&mut self, entrypoint: Option<&str>, input: Option<&Json>) -> Result<Json, Error> {
        let input = input.map(|i| serde_json::to_vec(i).unwrap_or_default());
        self.eval_text(entrypoint, input.as_deref())
    }

    /// [`OpaWasmPolicy::eval`] with the input given as JSON text.
    pub fn eval_text(
        &mut self,
        entrypoint: Option<&str>,
        input: Option<&[u8]>,
    ) -> Result<Json, Error> {
        let id = self.entrypoint_id(entrypoint)?;
        self.eval_raw(id, input)
    }

    /// Evaluates with the input given as JSON text (None: undefined).
    pub fn eval_raw(&mut self, entrypoint: i32, input: Option<&[u8]>) -> Result<Json, Error> {
        if self.live.is_none() {
            self.instantiate()?;
        }
        self.eval_live(entrypoint, input).map_err(|f| {
            if !f.instance_intact {
                // A trap may leave the instance in any state: start afresh next time.
                self.live = None;
            }
            f.error
        })
    }

    fn eval_live(&mut self, entrypoint: i32, input: Option<&[u8]>) -> Result<Json, Failed> {
        let mut live = self.live.take().expect("instantiated");
        let out = self.eval_in(&mut live, entrypoint, input);
        self.live = Some(live);
        out
    }

    fn eval_in(
        &self,
        live: &mut Live,
        entrypoint: i32,
        input: Option<&[u8]>,
    ) -> Result<Json, Failed> {
        let Live {
            store,
            abi,
            data_addr,
            eval_heap,
        } = live;
        store.data_mut().abort = None;
        store.data_mut().memory_refused = false;
        store.data_mut().prints.clear();
        self.refuel(store)?;
        let result_addr = match &abi.eval {
            Eval::Fast(opa_eval) => {
                let (addr, len) = match input {
                    Some(bytes) => {
                        ensure_room(store, abi, *eval_heap as u64 + bytes.len() as u64)
                            .map_err(|e| self.fail(store, e, "input"))?;
                        abi.memory
                            .write(&mut *store, *eval_heap as usize, bytes)
                            .map_err(|e| Error::host(format!("{e}")))?;
                        (*eval_heap, bytes.len() as i32)
                    }
                    None => (0, 0),
                };
                opa_eval
                    .call(
                        &mut *store,
                        (0, entrypoint, *data_addr, addr, len, *eval_heap + len, 0),
                    )
                    .map_err(|e| self.fail(store, e, "evaluation failed"))?
            }
            Eval::Ctx {
                new,
                set_input,
                set_data,
                set_entrypoint,
                get_result,
                eval,
            } => {
                abi.heap_ptr_set
                    .call(&mut *store, *eval_heap)
                    .map_err(|e| self.fail(store, e, "heap"))?;
                let input_addr = match input {
                    Some(bytes) => {
                        let addr = write_bytes(store, abi, bytes)
                            .map_err(|e| self.fail(store, e, "input"))?;
                        let v = abi
                            .json_parse
                            .call(&mut *store, (addr, bytes.len() as i32))
                            .map_err(|e| self.fail(store, e, "input"))?;
                        if v == 0 {
                            return Err(Failed {
                                error: Error::policy(
                                    "malformed input: the policy module could not parse it",
                                ),
                                instance_intact: true,
                            });
                        }
                        Some(v)
                    }
                    None => None,
                };
                let call = |store: &mut Store<HostState>| -> wasmtime::Result<i32> {
                    let ctx = new.call(&mut *store, ())?;
                    if let Some(i) = input_addr {
                        set_input.call(&mut *store, (ctx, i))?;
                    }
                    if *data_addr != 0 {
                        set_data.call(&mut *store, (ctx, *data_addr))?;
                    }
                    if let Some(set_ep) = set_entrypoint {
                        set_ep.call(&mut *store, (ctx, entrypoint))?;
                    } else if entrypoint != 0 {
                        return Err(wasmtime::Error::new(HostFailure(
                            "an ABI 1.0 module has only entrypoint 0".into(),
                        )));
                    }
                    let rc = eval.call(&mut *store, ctx)?;
                    if rc != 0 {
                        return Err(wasmtime::Error::new(HostFailure(format!(
                            "eval returned error code {rc}"
                        ))));
                    }
                    let result = get_result.call(&mut *store, ctx)?;
                    abi.json_dump.call(&mut *store, result)
                };
                call(store).map_err(|e| self.fail(store, e, "evaluation failed"))?
            }
        };
        if result_addr == 0 {
            return Err(
                Error::policy("evaluation failed: the policy module returned no result").into(),
            );
        }
        result_set(abi.memory.data(&*store), result_addr)
            .map_err(|e| Error::policy(format!("evaluation failed: {e}")).into())
    }
}

/// Reads the result an evaluation returned at `addr` in the module's
/// memory: NUL-terminated JSON text holding OPA's result set (an array).
/// Public for the fuzz targets.
#[doc(hidden)]
pub fn result_set(memory: &[u8], addr: i32) -> Result<Json, String> {
    // Read in place (serde_json checks the UTF-8).
    let text = cstr_bytes(memory, addr)?;
    let value: Json = serde_json::from_slice(text)
        .map_err(|e| format!("the policy module returned malformed JSON ({e})"))?;
    if !value.is_array() {
        return Err(format!(
            "the policy module returned {}, not a result set",
            truncate(&String::from_utf8_lossy(text))
        ));
    }
    Ok(value)
}

/// Reads what the module's `entrypoints()` or `builtins()` (`what`)
/// returned: a JSON object of names to integer ids. Public for the fuzz
/// targets.
#[doc(hidden)]
pub fn id_map(json: &str, what: &str) -> Result<HashMap<String, i32>, String> {
    let value: Json = serde_json::from_str(json)
        .map_err(|e| format!("the module's {what}() is not valid JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| format!("the module's {what}() is not a JSON object"))?;
    obj.iter()
        .map(|(k, v)| {
            let id = v
                .as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(|| {
                    format!("the module's {what}() maps `{k}` to {v}, not an integer id")
                })?;
            Ok((k.clone(), id))
        })
        .collect()
}

/// Compiles a policy module with the runtime, through its compile cache
/// (the one `run` uses), so that a second load compiles nothing.
fn compile(runtime: &wasmlayer_core::Runtime, wasm: &[u8]) -> Result<Module, Error> {
    use wasmlayer_core::runtime::Compiled;
    const NAME: &str = "policy module";
    match runtime.load_bytes(NAME, wasm, Default::default()) {
        Ok(loaded) => match loaded.compiled {
            Compiled::Module(m) => Ok(m),
            Compiled::Component(_) => Err(Error::policy(
                "not an OPA policy module: it is a component, not a core module",
            )),
        },
        Err(Error::InvalidArtifact(m)) => Err(Error::policy(format!(
            "not a valid WebAssembly module: {}",
            m.strip_prefix(NAME)
                .map_or(&m[..], |m| m.trim_start_matches(": "))
        ))),
        Err(e) => Err(e),
    }
}

/// An evaluation that failed, and whether its instance can serve the next
/// one (input the module could not parse leaves it as it was; a trap may
/// leave it in any state).
struct Failed {
    error: Error,
    instance_intact: bool,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            instance_intact: false,
        }
    }
}

/// A host-side failure inside a host function (bad builtin call, say).
#[derive(Debug)]
struct HostFailure(String);

impl std::fmt::Display for HostFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostFailure {}

fn root(e: &wasmtime::Error) -> String {
    e.chain().last().map(|c| c.to_string()).unwrap_or_default()
}

fn truncate(s: &str) -> String {
    if s.len() > 80 {
        format!("{}...", &s[..s.floor_char_boundary(80)])
    } else {
        s.to_string()
    }
}

fn abi_version(instance: &Instance, store: &mut Store<HostState>) -> Result<(u32, u32), Error> {
    let mut get = |name: &str| -> Result<Option<u32>, Error> {
        match instance.get_global(&mut *store, name) {
            None => Ok(None),
            Some(g) => match g.get(&mut *store) {
                Val::I32(v) if v >= 0 => Ok(Some(v as u32)),
                other => Err(Error::policy(format!(
                    "the module's `{name}` is {other:?}, not an i32 version"
                ))),
            },
        }
    };
    // Modules from before the version globals are ABI 1.0.
    let major = get("opa_wasm_abi_version")?.unwrap_or(1);
    let minor = get("opa_wasm_abi_minor_version")?.unwrap_or(0);
    Ok((major, minor))
}

fn exports(
    instance: &Instance,
    store: &mut Store<HostState>,
    memory: Memory,
    minor: u32,
) -> Result<Abi, Error> {
    macro_rules! func {
        ($name:expr) => {
            instance.get_typed_func(&mut *store, $name).map_err(|e| {
                Error::policy(format!(
                    "not an OPA policy module: export `{}` is missing or has the wrong type ({})",
                    $name,
                    root(&e)
                ))
            })?
        };
    }
    macro_rules! opt_func {
        ($name:expr) => {
            if instance.get_export(&mut *store, $name).is_some() {
                Some(func!($name))
            } else {
                None
            }
        };
    }
    let fast = if minor >= 2 {
        opt_func!("opa_eval")
    } else {
        None
    };
    let eval = match fast {
        Some(f) => Eval::Fast(f),
        None => Eval::Ctx {
            new: func!("opa_eval_ctx_new"),
            set_input: func!("opa_eval_ctx_set_input"),
            set_data: func!("opa_eval_ctx_set_data"),
            set_entrypoint: opt_func!("opa_eval_ctx_set_entrypoint"),
            get_result: func!("opa_eval_ctx_get_result"),
            eval: func!("eval"),
        },
    };
    Ok(Abi {
        memory,
        malloc: func!("opa_malloc"),
        json_parse: func!("opa_json_parse"),
        json_dump: func!("opa_json_dump"),
        heap_ptr_get: func!("opa_heap_ptr_get"),
        heap_ptr_set: func!("opa_heap_ptr_set"),
        builtins: func!("builtins"),
        entrypoints: func!("entrypoints"),
        eval,
    })
}

/// Grows memory so that `end` is addressable.
fn ensure_room(store: &mut Store<HostState>, abi: &Abi, end: u64) -> wasmtime::Result<()> {
    let size = abi.memory.data_size(&*store) as u64;
    if end > size {
        let pages = (end - size).div_ceil(65536);
        abi.memory.grow(&mut *store, pages)?;
    }
    Ok(())
}

/// Copies `bytes` into memory the module allocates; returns the address.
fn write_bytes(store: &mut Store<HostState>, abi: &Abi, bytes: &[u8]) -> wasmtime::Result<i32> {
    let len = i32::try_from(bytes.len())
        .map_err(|_| wasmtime::Error::new(HostFailure("value too large".into())))?;
    let addr = abi.malloc.call(&mut *store, len)?;
    if addr == 0 && len > 0 {
        return Err(wasmtime::Error::new(HostFailure(
            "the policy module could not allocate memory".into(),
        )));
    }
    abi.memory
        .write(&mut *store, addr as u32 as usize, bytes)
        .map_err(|_| {
            wasmtime::Error::new(HostFailure(
                "opa_malloc returned an address outside memory".into(),
            ))
        })?;
    Ok(addr)
}

/// JSON text of the value at `addr`, through `opa_json_dump`.
fn dump(store: &mut Store<HostState>, abi: &Abi, addr: i32) -> wasmtime::Result<String> {
    let s = abi.json_dump.call(&mut *store, addr)?;
    read_cstr(&*store, &abi.memory, s).map_err(|m| wasmtime::Error::new(HostFailure(m)))
}

/// A NUL-terminated UTF-8 string at `addr`.
fn read_cstr(
    store: impl wasmtime::AsContext,
    memory: &Memory,
    addr: i32,
) -> Result<String, String> {
    cstr_in(memory.data(&store), addr)
}

/// A NUL-terminated UTF-8 string at `addr` in `data`.
fn cstr_in(data: &[u8], addr: i32) -> Result<String, String> {
    let text = cstr_bytes(data, addr)?;
    String::from_utf8(text.to_vec()).map_err(|_| format!("string at {addr:#x} is not UTF-8"))
}

/// The bytes of the NUL-terminated string at `addr`, without the NUL.
fn cstr_bytes(data: &[u8], addr: i32) -> Result<&[u8], String> {
    let start = addr as u32 as usize;
    let tail = data
        .get(start..)
        .ok_or_else(|| format!("string address {start:#x} is outside memory"))?;
    std::ffi::CStr::from_bytes_until_nul(tail)
        .map(|c| c.to_bytes())
        .map_err(|_| format!("string at {start:#x} is not NUL-terminated"))
}

fn host_linker(engine: &Engine) -> Result<Linker<HostState>, Error> {
    let mut linker: Linker<HostState> = Linker::new(engine);
    let wrap = |e: wasmtime::Error| Error::host(format!("{e:#}"));
    linker
        .func_wrap(
            "env",
            "opa_abort",
            |mut caller: Caller<'_, HostState>, addr: i32| -> wasmtime::Result<()> {
                let msg = caller_cstr(&mut caller, addr)
                    .unwrap_or_else(|e| format!("(unreadable message: {e})"));
                caller.data_mut().abort = Some(msg.clone());
                Err(wasmtime::Error::new(HostFailure(format!(
                    "policy aborted: {msg}"
                ))))
            },
        )
        .map_err(wrap)?;
    linker
        .func_wrap(
            "env",
            "opa_println",
            |mut caller: Caller<'_, HostState>, addr: i32| {
                let msg = caller_cstr(&mut caller, addr)
                    .unwrap_or_else(|e| format!("(unreadable message: {e})"));
                tracing::debug!(target: "wasmlayer::policy", "{msg}");
                let prints = &mut caller.data_mut().prints;
                if prints.len() < 1000 {
                    prints.push(msg);
                }
            },
        )
        .map_err(wrap)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin0",
            |mut c: Caller<'_, HostState>, id: i32, _ctx: i32| call_builtin(&mut c, id, &[]),
        )
        .map_err(wrap)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin1",
            |mut c: Caller<'_, HostState>, id: i32, _ctx: i32, a: i32| {
                call_builtin(&mut c, id, &[a])
            },
        )
        .map_err(wrap)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin2",
            |mut c: Caller<'_, HostState>, id: i32, _ctx: i32, a: i32, b: i32| {
                call_builtin(&mut c, id, &[a, b])
            },
        )
        .map_err(wrap)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin3",
            |mut c: Caller<'_, HostState>, id: i32, _ctx: i32, a: i32, b: i32, d: i32| {
                call_builtin(&mut c, id, &[a, b, d])
            },
        )
        .map_err(wrap)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin4",
            |mut c: Caller<'_, HostState>, id: i32, _ctx: i32, a: i32, b: i32, d: i32, e: i32| {
                call_builtin(&mut c, id, &[a, b, d, e])
            },
        )
        .map_err(wrap)?;
    Ok(linker)
}

fn caller_cstr(caller: &mut Caller<'_, HostState>, addr: i32) -> Result<String, String> {
    let memory = caller
        .data()
        .abi
        .as_ref()
        .map(|a| a.memory)
        .ok_or("no memory yet")?;
    read_cstr(&*caller, &memory, addr)
}

/// Runs builtin `id` on the values at `args`; returns the result's address
/// (0 for undefined).
fn call_builtin(
    caller: &mut Caller<'_, HostState>,
    id: i32,
    args: &[i32],
) -> wasmtime::Result<i32> {
    let abi = caller.data().abi.clone().ok_or_else(|| {
        wasmtime::Error::new(HostFailure(
            "builtin called before the module was ready".into(),
        ))
    })?;
    let builtin = caller.data().builtins.get(&id).cloned().ok_or_else(|| {
        wasmtime::Error::new(HostFailure(format!(
            "the policy called unknown builtin id {id}"
        )))
    })?;
    let mut values = Vec::with_capacity(args.len());
    for &addr in args {
        let s = abi.json_dump.call(&mut *caller, addr)?;
        let text = read_cstr(&*caller, &abi.memory, s)
            .map_err(|m| wasmtime::Error::new(HostFailure(m)))?;
        let v: Json = serde_json::from_str(&text).map_err(|e| {
            wasmtime::Error::new(HostFailure(format!(
                "{}: argument is not valid JSON: {e}",
                builtin.name()
            )))
        })?;
        values.push(v);
    }
    let result = builtin.call(&values).map_err(|m| {
        caller.data_mut().memory_refused = crate::memory::take_refused();
        caller.data_mut().abort = Some(m.clone());
        wasmtime::Error::new(HostFailure(m))
    })?;
    let Some(result) = result else { return Ok(0) };
    let bytes = serde_json::to_vec(&result)?;
    let len = bytes.len() as i32;
    let addr = abi.malloc.call(&mut *caller, len)?;
    abi.memory
        .write(&mut *caller, addr as u32 as usize, &bytes)
        .map_err(|_| {
            wasmtime::Error::new(HostFailure(
                "opa_malloc returned an address outside memory".into(),
            ))
        })?;
    abi.json_parse.call(&mut *caller, (addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written ABI module of the end-to-end tests, ABI minor `minor`.
    fn abi_module(minor: u32) -> WasmPolicySource {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/policies/abi.wat"
        );
        let wat = std::fs::read_to_string(path)
            .unwrap()
            .replace("MINOR_VERSION", &minor.to_string())
            .replace("BUILTINS", "{}")
            .replace("EXTRA_IMPORT", "");
        WasmPolicySource::from_bytes(wat.as_bytes()).unwrap()
    }

    #[test]
    fn one_instance_serves_many_evaluations_in_constant_memory() {
        let runtime = crate::policy_runtime().unwrap();
        for minor in [2, 1] {
            let mut p =
                OpaWasmPolicy::new(runtime, &abi_module(minor), &Json::Null, &Limits::default())
                    .unwrap();
            let input = serde_json::json!({"blob": "x".repeat(100_000)});
            let first = p.eval(Some("echo/input"), Some(&input)).unwrap();
            assert_eq!(first[0]["result"], input);
            assert_eq!(p.prints(), ["evaluating"]);
            let size = p.memory_size();
            for _ in 0..200 {
                p.eval(Some("echo/input"), Some(&input)).unwrap();
            }
            assert_eq!(
                p.memory_size(),
                size,
                "minor {minor}: the heap is reset between evaluations"
            );
            // A failed evaluation drops the instance; the next one gets a fresh one.
            assert!(p.eval(Some("bad/abort"), None).is_err());
            assert_eq!(p.eval(Some("echo/input"), Some(&input)).unwrap(), first);
        }
    }

    #[test]
    fn bundle_entries_outside_the_bundle_are_refused() {
        // The tar crate refuses to write such a path: the header by hand.
        let mut header = tar::Header::new_ustar();
        let name = b"../../escape/data.json";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        let mut raw = header.as_bytes().to_vec();
        raw.extend_from_slice(b"{}");
        raw.resize(1024 + 1024, 0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let e = read_bundle(&gz.finish().unwrap()).err().unwrap();
        assert!(
            e.contains("../../escape/data.json") && e.contains("outside the bundle"),
            "{e}"
        );
    }

    #[test]
    fn input_the_module_cannot_parse_keeps_the_instance() {
        let runtime = crate::policy_runtime().unwrap();
        // ABI 1.1: the input goes through opa_json_parse, which refuses it.
        let mut p =
            OpaWasmPolicy::new(runtime, &abi_module(1), &Json::Null, &Limits::default()).unwrap();
        let id = p.entrypoint_id(Some("echo/input")).unwrap();
        assert_eq!(
            p.eval_raw(id, Some(b"[1]")).unwrap()[0]["result"],
            serde_json::json!([1])
        );
        let e = p.eval_raw(id, Some(b"!not json")).unwrap_err();
        assert!(
            matches!(&e, Error::Policy(m) if m.starts_with("malformed input")),
            "{e}"
        );
        assert!(
            p.live.is_some(),
            "the instance is kept after input it could not parse"
        );
        assert_eq!(
            p.eval_raw(id, Some(b"[2]")).unwrap()[0]["result"],
            serde_json::json!([2])
        );
        // A trap is another matter: the instance is dropped.
        assert!(p.eval(Some("bad/abort"), None).is_err());
        assert!(p.live.is_none());
    }
}
