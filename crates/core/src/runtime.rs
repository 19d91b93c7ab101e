//! The one engine builder and the per-process `Runtime`: engine, compile
//! cache and admission. Every command gets its engine from here.

use crate::admission::{Admission, GrantRequested};
use crate::artifact::{detect, ArtifactFacts, ArtifactKind, Format};
use crate::cache::{Cache, IndexEntry};
use crate::error::{Error, Result};
use crate::host::Host;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "compiler")]
use std::time::Instant;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, Module};

/// Engine settings that change generated code (and so the cache key).
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Instrument code with fuel counting (needed for `--fuel`).
    pub fuel: bool,
    /// Use the pooling instance allocator with room for this many instances.
    pub pooling: Option<PoolingOptions>,
    /// Without the component model's async ABI (WASI 0.3): code for a build
    /// without the `p3` feature, such as the edge build, which loads only
    /// code compiled this way.
    pub without_p3: bool,
}

/// Pooling allocator sizing, for hosts that keep many instances alive.
#[derive(Debug, Clone)]
pub struct PoolingOptions {
    /// Instances (modules or components) alive at once.
    pub total_instances: u32,
    /// Largest linear memory an instance may have.
    pub max_memory_size: usize,
    /// Core instances and tables per instance: a component made by the
    /// usual toolchains holds several of each.
    pub slots_per_instance: u32,
    /// Linear memories per instance, on average over the pool (one component
    /// may have up to `slots_per_instance`). Each live memory costs memory
    /// mappings, which the kernel bounds (`vm.max_map_count`), so this is
    /// kept to what components need: the usual toolchains make one.
    pub memories_per_instance: u32,
    /// Reserve only `max_memory_size` of address space per memory (plus a
    /// small guard) instead of Wasmtime's 4 GiB, so that many thousands of
    /// instances fit; bounds checks become explicit.
    pub compact_memory: bool,
}

impl Default for PoolingOptions {
    fn default() -> Self {
        PoolingOptions {
            total_instances: 1000,
            max_memory_size: 64 << 20,
            slots_per_instance: 1,
            memories_per_instance: 1,
            compact_memory: false,
        }
    }
}

/// Builds an engine that compiles and runs code. This (through
/// [`engine_config`]) is the only place a `wasmtime::Config` is made.
#[cfg(feature = "compiler")]
pub fn build_engine(opts: &EngineOptions) -> Result<Engine> {
    Engine::new(&engine_config(opts, true))
        .map_err(|e| Error::host(format!("cannot create the engine: {e:#}")))
}

/// The engine configuration; `compiler: false` gives an engine that only
/// loads precompiled code, which is much cheaper to create.
fn engine_config(opts: &EngineOptions, compiler: bool) -> Config {
    let mut config = Config::new();
    #[cfg(feature = "compiler")]
    config.enable_compiler(compiler);
    #[cfg(not(feature = "compiler"))]
    let _ = compiler;
    config.epoch_interruption(true);
    config.consume_fuel(opts.fuel);
    #[cfg(feature = "p3")]
    if opts.without_p3 {
        config.concurrency_support(false);
    }
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Environment);
    if let Some(p) = &opts.pooling {
        use_pooling(&mut config, p);
    }
    config
}

/// The pooling instance allocator, sized as `p` says.
#[cfg(feature = "pooling")]
fn use_pooling(config: &mut Config, p: &PoolingOptions) {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    let slots = p
        .total_instances
        .saturating_mul(p.slots_per_instance.max(1));
    let memories = p
        .total_instances
        .saturating_mul(p.memories_per_instance.max(1));
    pool.total_core_instances(slots)
        .total_component_instances(p.total_instances)
        .total_memories(memories)
        .max_memories_per_component(p.slots_per_instance.max(1))
        .total_tables(slots)
        .total_stacks(p.total_instances)
        .max_memory_size(p.max_memory_size);
    if p.compact_memory {
        config.memory_reservation(p.max_memory_size as u64);
        config.memory_guard_size(64 << 10);
        config.memory_reservation_for_growth(0);
        // Initial data is copied in rather than mapped copy-on-write:
        // a mapped image costs a memory mapping per live instance, and
        // with many thousands of instances mappings run out first.
        config.memory_init_cow(false);
    }
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
}

/// Without the `pooling` feature instances are allocated on demand.
#[cfg(not(feature = "pooling"))]
fn use_pooling(_config: &mut Config, _p: &PoolingOptions) {
    tracing::warn!("built without the pooling allocator (feature `pooling`): instances are allocated on demand");
}

/// A compiled artifact.
#[derive(Clone)]
pub enum Compiled {
    Module(Module),
    Component(Component),
}

impl Compiled {
    /// The engine the code belongs to: stores that run it must use it.
    pub fn engine(&self) -> &Engine {
        match self {
            Compiled::Module(m) => m.engine(),
            Compiled::Component(c) => c.engine(),
        }
    }
}

/// How the code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Found in the cache via the file's stat key, without reading the source.
    HitByStat,
    /// Found in the cache by content hash.
    Hit,
    /// Compiled now (and stored, when the cache is on).
    Compiled,
    /// Precompiled artifact loaded as given.
    Precompiled,
}

/// An artifact ready to instantiate.
#[derive(Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub compiled: Compiled,
    pub facts: ArtifactFacts,
    pub cache: CacheOutcome,
}

/// Options for loading an artifact.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Allow precompiled (`.cwasm`) input. Deserialising precompiled code
    /// trusts it completely, so it must be asked for explicitly.
    pub allow_precompiled: bool,
}

/// Builder for [`Runtime`].
pub struct RuntimeBuilder {
    engine: EngineOptions,
    cache_root: Option<PathBuf>,
    cache: bool,
    admission: Arc<dyn Admission>,
    host: Host,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            engine: EngineOptions::default(),
            cache_root: None,
            cache: true,
            admission: Arc::new(GrantRequested),
            host: Host::new(),
        }
    }
}

impl RuntimeBuilder {
    pub fn engine_options(mut self, opts: EngineOptions) -> Self {
        self.engine = opts;
        self
    }

    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_root = dir;
        self
    }

    pub fn cache(mut self, enabled: bool) -> Self {
        self.cache = enabled;
        self
    }

    pub fn admission(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = admission;
        self
    }

    /// Adds a host capability to every guest this runtime runs (WASI is
    /// always there).
    pub fn extension(mut self, extension: impl crate::host::Extension) -> Self {
        self.host = self.host.with(extension);
        self
    }

    pub fn build(self) -> Result<Runtime> {
        // Cached code loads into an engine without a compiler, so a warm
        // start never sets up Cranelift. The compiling engine, with the same
        // configuration otherwise, is made on the first cache miss.
        let engine = Engine::new(&engine_config(&self.engine, false))
            .map_err(|e| Error::host(format!("cannot create the engine: {e:#}")))?;
        let cache = match self.cache {
            true => open_cache(self.cache_root, &engine),
            false => None,
        };
        Ok(Runtime {
            engine,
            #[cfg(feature = "compiler")]
            compiler: std::sync::OnceLock::new(),
            options: self.engine,
            cache,
            admission: self.admission,
            host: self.host,
        })
    }
}

/// Identifies an engine configuration for the cache: Wasmtime version and
/// every setting that affects compiled code.
#[cfg(feature = "compiler")]
pub fn engine_id(engine: &Engine) -> String {
    use std::hash::Hash;
    struct B3(blake3::Hasher);
    impl std::hash::Hasher for B3 {
        fn finish(&self) -> u64 {
            u64::from_le_bytes(self.0.finalize().as_bytes()[..8].try_into().unwrap())
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = B3(blake3::Hasher::new());
    concat!("wasmlayer ", env!("CARGO_PKG_VERSION")).hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.finalize().to_hex()[..24].to_string()
}

/// The compile cache under `root` (or the default root) for `engine`'s
/// configuration; none, with a warning, when it cannot be opened.
#[cfg(feature = "compiler")]
fn open_cache(root: Option<PathBuf>, engine: &Engine) -> Option<Cache> {
    let root = root.or_else(crate::cache::default_root)?;
    Cache::open(&root, &engine_id(engine))
        .map_err(|e| tracing::warn!("compile cache disabled: {e}"))
        .ok()
}

/// Without a compiler there is nothing to cache: precompiled code is
/// loaded as given.
#[cfg(not(feature = "compiler"))]
fn open_cache(_root: Option<PathBuf>, _engine: &Engine) -> Option<Cache> {
    None
}

/// One per process: the engine, the compile cache and the admission.
pub struct Runtime {
    /// Loads and runs code; has no compiler.
    pub(crate) engine: Engine,
    /// Compiles code; created on first use.
    #[cfg(feature = "compiler")]
    compiler: std::sync::OnceLock<Engine>,
    options: EngineOptions,
    cache: Option<Cache>,
    pub(crate) admission: Arc<dyn Admission>,
    /// The extensions guests are run with.
    pub(crate) host: Host,
}

impl Runtime {
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Whether this runtime's code is instrumented for fuel.
    pub fn meters_fuel(&self) -> bool {
        self.options.fuel
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// The extensions this runtime's guests get (WASI, and what the
    /// builder added); a host such as `serve` adds its own to a copy.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Loads an artifact held in memory (an OCI layer, a download): the
    /// same detection, compile cache (by content) and admission facts as
    /// [`Runtime::load`]. `name` stands for it in messages.
    pub fn load_bytes(&self, name: &str, bytes: &[u8], opts: LoadOptions) -> Result<Loaded> {
        self.load_from(Path::new(name), bytes, None, opts)
    }

    /// Loads an artifact from disk: detects its kind, and compiles it or
    /// takes its code from the cache.
    pub fn load(&self, path: &Path, opts: LoadOptions) -> Result<Loaded> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::invalid(format!(
                "{}: is a directory, not a WebAssembly file",
                path.display()
            )));
        }
        // Only a regular file has an identity worth remembering: a pipe or a
        // device can give other bytes each time.
        let stat_key = self
            .cache
            .as_ref()
            .filter(|_| meta.is_file())
            .map(|_| Cache::stat_key(&meta));
        if let (Some(cache), Some(key)) = (&self.cache, &stat_key) {
            if let Some(entry) = cache.lookup_index(key) {
                if let Some(compiled) = self.load_cached(cache, &entry.sha256, entry.kind) {
                    tracing::info!(path = %path.display(), sha256 = %entry.sha256, "cache hit (by file identity): nothing compiled");
                    return Ok(self.finish(
                        path,
                        compiled,
                        entry.sha256,
                        meta.len(),
                        entry.format,
                        CacheOutcome::HitByStat,
                    ));
                }
            }
        }

        let bytes = read_artifact(path)?;
        self.load_from(path, &bytes, stat_key.as_ref(), opts)
    }

    /// Loads precompiled code that stands for the module or component whose
    /// digest is `sha256` and size `size` (the artifact store's code, named
    /// by that digest): checked against its integrity trailer like any
    /// precompiled file, but not hashed again, and admission judges the
    /// module it was compiled from.
    pub fn load_precompiled_for(&self, path: &Path, sha256: &str, size: u64) -> Result<Loaded> {
        use crate::cache::{verify_file, FileCheckError};
        verify_file(path).map_err(|e| match e {
            FileCheckError::Io(e) => Error::io(path, e),
            FileCheckError::Trailer(e) => trailer_error(path, e),
        })?;
        let kind = match wasmtime::Engine::detect_precompiled_file(path) {
            Ok(Some(wasmtime::Precompiled::Module)) => ArtifactKind::Module,
            Ok(Some(wasmtime::Precompiled::Component)) => ArtifactKind::Component,
            _ => {
                return Err(Error::invalid(format!(
                    "{}: is not precompiled code",
                    path.display()
                )))
            }
        };
        // SAFETY: the artifact store is trusted like the compile cache (only
        // `compile --store` and `oci pull --store` write its code), and the
        // file passed its integrity check. Mapping the file, rather than
        // reading and copying it, keeps a start to the pages it touches.
        let compiled = unsafe { self.map_code(path, kind) }.map_err(|e| cannot_load(path, &e))?;
        Ok(self.finish(
            path,
            compiled,
            sha256.to_string(),
            size,
            Format::Precompiled,
            CacheOutcome::Precompiled,
        ))
    }

    /// Detects, then compiles or takes from the cache; `stat_key` is the
    /// file's identity, remembered for the next load of the same file.
    fn load_from(
        &self,
        path: &Path,
        bytes: &[u8],
        stat_key: Option<&String>,
        opts: LoadOptions,
    ) -> Result<Loaded> {
        let (format, kind) = detect(bytes).map_err(|e| prefix(path, e))?;
        let sha256 = hex(&sha2::Sha256::digest(bytes));
        if format == Format::Precompiled {
            if !opts.allow_precompiled {
                return Err(Error::invalid(format!(
                    "{}: is precompiled code; loading it trusts it completely, so pass --allow-precompiled if it comes from a trusted source",
                    path.display()
                )));
            }
            let compiled = self.deserialize_precompiled(path, bytes, kind.expect("detected"))?;
            return Ok(self.finish(
                path,
                compiled,
                sha256,
                bytes.len() as u64,
                format,
                CacheOutcome::Precompiled,
            ));
        }

        let wasm: std::borrow::Cow<[u8]> = match format {
            Format::Wat => parse_wat(path, bytes)?,
            _ => std::borrow::Cow::Borrowed(bytes),
        };
        let kind = match kind {
            Some(k) => k,
            None => detect(&wasm)
                .map_err(|e| prefix(path, e))?
                .1
                .expect("binary wasm has a kind"),
        };

        if let Some(cache) = &self.cache {
            if let Some(compiled) = self.load_cached(cache, &sha256, kind) {
                tracing::info!(path = %path.display(), %sha256, "cache hit (by content): nothing compiled");
                if let Some(key) = stat_key {
                    cache.write_index(
                        key,
                        &IndexEntry {
                            sha256: sha256.clone(),
                            kind,
                            format,
                        },
                    );
                }
                return Ok(self.finish(
                    path,
                    compiled,
                    sha256,
                    bytes.len() as u64,
                    format,
                    CacheOutcome::Hit,
                ));
            }
        }

        let compiled = self.compile_and_store(path, &wasm, kind, &sha256, format, stat_key)?;
        Ok(self.finish(
            path,
            compiled,
            sha256,
            bytes.len() as u64,
            format,
            CacheOutcome::Compiled,
        ))
    }

    /// Compiles on a cache miss, and stores the code in the cache.
    #[cfg(feature = "compiler")]
    fn compile_and_store(
        &self,
        path: &Path,
        wasm: &[u8],
        kind: ArtifactKind,
        sha256: &str,
        format: Format,
        stat_key: Option<&String>,
    ) -> Result<Compiled> {
        let start = Instant::now();
        let compiled = self.compile(wasm, kind).map_err(|e| prefix(path, e))?;
        tracing::info!(path = %path.display(), %sha256, elapsed_ms = start.elapsed().as_secs_f64() * 1e3, "compiled (cache miss)");
        if let Some(cache) = &self.cache {
            cache.store_object(sha256, &self.serialize(&compiled)?);
            if let Some(key) = stat_key {
                cache.write_index(
                    key,
                    &IndexEntry {
                        sha256: sha256.to_string(),
                        kind,
                        format,
                    },
                );
            }
        }
        Ok(compiled)
    }

    #[cfg(not(feature = "compiler"))]
    fn compile_and_store(
        &self,
        path: &Path,
        _wasm: &[u8],
        _kind: ArtifactKind,
        _sha256: &str,
        _format: Format,
        _stat_key: Option<&String>,
    ) -> Result<Compiled> {
        Err(no_compiler(&path.display().to_string()))
    }

    /// Compiles WebAssembly bytes (binary) of the given kind. The result
    /// belongs to the compiling engine, which has the same configuration as
    /// the loading one, so it runs exactly like code taken from the cache.
    #[cfg(feature = "compiler")]
    pub fn compile(&self, wasm: &[u8], kind: ArtifactKind) -> Result<Compiled> {
        let compiler = self.compiler()?;
        match kind {
            ArtifactKind::Module => Module::new(compiler, wasm).map(Compiled::Module),
            ArtifactKind::Component => Component::new(compiler, wasm).map(Compiled::Component),
        }
        .map_err(|e| Error::invalid(format!("invalid WebAssembly {kind}: {}", root_message(&e))))
    }

    /// A build without the `compiler` feature compiles nothing.
    #[cfg(not(feature = "compiler"))]
    pub fn compile(&self, _wasm: &[u8], _kind: ArtifactKind) -> Result<Compiled> {
        Err(no_compiler("WebAssembly that is not in the compile cache"))
    }

    #[cfg(feature = "compiler")]
    fn compiler(&self) -> Result<&Engine> {
        if let Some(e) = self.compiler.get() {
            return Ok(e);
        }
        let engine = build_engine(&self.options)?;
        Ok(self.compiler.get_or_init(|| engine))
    }

    /// The `.cwasm` format of `wasmlayer compile`: the serialised code
    /// followed by the same integrity trailer as cache entries, so that a
    /// damaged file is refused instead of mapped as code.
    #[cfg(feature = "compiler")]
    pub fn to_precompiled(&self, compiled: &Compiled) -> Result<Vec<u8>> {
        let mut code = self.serialize(compiled)?;
        crate::cache::append_trailer(&mut code);
        Ok(code)
    }

    /// Serialises compiled code (without a trailer; see [`Runtime::to_precompiled`]).
    #[cfg(feature = "compiler")]
    pub fn serialize(&self, compiled: &Compiled) -> Result<Vec<u8>> {
        match compiled {
            Compiled::Module(m) => m.serialize(),
            Compiled::Component(c) => c.serialize(),
        }
        .map_err(|e| Error::host(format!("cannot serialise compiled code: {e:#}")))
    }

    /// Maps compiled code of `kind` from the file at `path`.
    ///
    /// # Safety
    /// The file must be code this engine's configuration wrote, unchanged
    /// (see `Module::deserialize_file`): the caller has checked its trailer
    /// and trusts where it came from.
    unsafe fn map_code(&self, path: &Path, kind: ArtifactKind) -> wasmtime::Result<Compiled> {
        match kind {
            ArtifactKind::Module => {
                unsafe { Module::deserialize_file(&self.engine, path) }.map(Compiled::Module)
            }
            ArtifactKind::Component => {
                unsafe { Component::deserialize_file(&self.engine, path) }.map(Compiled::Component)
            }
        }
    }

    fn load_cached(&self, cache: &Cache, sha256: &str, kind: ArtifactKind) -> Option<Compiled> {
        let path = cache.verified_object(sha256)?;
        // SAFETY: the file is in our private cache directory, was written by
        // this engine configuration (the directory is keyed by it) and passed
        // the integrity check.
        let result = unsafe { self.map_code(&path, kind) };
        match result {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("cache entry {sha256} rejected ({e}); recompiling");
                cache.evict_object(sha256);
                None
            }
        }
    }

    fn deserialize_precompiled(
        &self,
        path: &Path,
        bytes: &[u8],
        kind: ArtifactKind,
    ) -> Result<Compiled> {
        let code = crate::cache::strip_trailer(bytes).map_err(|e| trailer_error(path, e))?;
        // SAFETY: the user vouched for this file with --allow-precompiled,
        // and the bytes are exactly what `wasmlayer compile` wrote (checked
        // above, on the copy in memory that is loaded).
        let result = unsafe {
            match kind {
                ArtifactKind::Module => {
                    Module::deserialize(&self.engine, code).map(Compiled::Module)
                }
                ArtifactKind::Component => {
                    Component::deserialize(&self.engine, code).map(Compiled::Component)
                }
            }
        };
        result.map_err(|e| cannot_load(path, &e))
    }

    fn finish(
        &self,
        path: &Path,
        compiled: Compiled,
        sha256: String,
        size: u64,
        format: Format,
        cache: CacheOutcome,
    ) -> Loaded {
        let (kind, imports) = match &compiled {
            Compiled::Module(m) => (
                ArtifactKind::Module,
                m.imports()
                    .map(|i| format!("{}::{}", i.module(), i.name()))
                    .collect(),
            ),
            Compiled::Component(c) => (
                ArtifactKind::Component,
                c.component_type()
                    .imports(c.engine())
                    .map(|(n, _)| n.to_string())
                    .collect(),
            ),
        };
        Loaded {
            path: path.to_owned(),
            compiled,
            facts: ArtifactFacts {
                sha256,
                size,
                kind,
                format,
                imports,
            },
            cache,
        }
    }
}

/// The most read from a source that is not a regular file (a pipe, a
/// device): such a source has no size to check beforehand, and `/dev/zero`
/// would otherwise be read without end.
pub const MAX_STREAMED_ARTIFACT: u64 = 256 << 20;

/// Precompiled code whose integrity trailer does not check out.
fn trailer_error(path: &Path, e: crate::cache::TrailerError) -> Error {
    use crate::cache::TrailerError;
    Error::invalid(match e {
        TrailerError::Missing => format!(
            "{}: precompiled code without a wasmlayer checksum (truncated, or not written by `wasmlayer compile`); compile it again",
            path.display()
        ),
        TrailerError::Mismatch => format!(
            "{}: precompiled code is corrupted (checksum mismatch); compile it again",
            path.display()
        ),
    })
}

/// Precompiled code this engine refuses.
fn cannot_load(path: &Path, e: &wasmtime::Error) -> Error {
    Error::invalid(format!(
        "{}: cannot load precompiled code: {} (it must be compiled by this wasmlayer version with the same engine settings, e.g. --fuel)",
        path.display(),
        root_message(e)
    ))
}

/// Reads an artifact. A regular file is read whole; anything else (a pipe,
/// a device) is read up to [`MAX_STREAMED_ARTIFACT`] bytes. Either is refused
/// as soon as its first bytes are no known artifact format, so a large file
/// of anything else (or `/dev/zero`) is not read to its end.
pub fn read_artifact(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::invalid(format!(
            "{}: is a directory, not a WebAssembly file",
            path.display()
        )));
    }
    const HEAD: u64 = 4096;
    let mut bytes = Vec::new();
    (&mut f)
        .take(HEAD)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 == HEAD && !crate::artifact::known_prefix(&bytes) {
        return Err(prefix(
            path,
            detect(&bytes).err().unwrap_or_else(|| {
                Error::invalid(
                    "not a WebAssembly module, component, text file or precompiled artifact",
                )
            }),
        ));
    }
    if meta.is_file() {
        let rest = usize::try_from(meta.len().saturating_sub(HEAD)).unwrap_or(usize::MAX);
        bytes.try_reserve_exact(rest).map_err(|_| {
            Error::invalid(format!(
                "{}: too large to load ({} bytes)",
                path.display(),
                meta.len()
            ))
        })?;
        f.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
        return Ok(bytes);
    }
    f.take(MAX_STREAMED_ARTIFACT + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_STREAMED_ARTIFACT {
        return Err(Error::invalid(format!(
            "{}: not a regular file, and longer than {}; refusing to read more (save it to a file first)",
            path.display(),
            crate::limits::format_size(MAX_STREAMED_ARTIFACT)
        )));
    }
    Ok(bytes)
}

/// WebAssembly text, as binary.
#[cfg(feature = "compiler")]
fn parse_wat<'a>(path: &Path, text: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
    wat::parse_bytes(text)
        .map_err(|e| Error::invalid(format!("{}: invalid WebAssembly text: {e}", path.display())))
}

#[cfg(not(feature = "compiler"))]
fn parse_wat<'a>(path: &Path, _text: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
    Err(no_compiler(&format!(
        "{} (WebAssembly text)",
        path.display()
    )))
}

/// What a build without the compiler says when asked to compile.
#[cfg(not(feature = "compiler"))]
fn no_compiler(what: &str) -> Error {
    Error::usage(format!(
        "{what} needs compiling, and this wasmlayer is built without a compiler: compile it ahead of time with `wasmlayer compile` (a full build, same version and settings) and run the .cwasm with --allow-precompiled"
    ))
}

fn prefix(path: &Path, e: Error) -> Error {
    match e {
        Error::InvalidArtifact(m) => Error::InvalidArtifact(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// The innermost useful message of a wasmtime error chain.
pub(crate) fn root_message(e: &wasmtime::Error) -> String {
    let msgs: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    msgs.join(": ")
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}
