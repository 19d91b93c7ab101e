//! Wasmlayer core: the engine builder, capabilities and limits, artifact
//! loading with the compile cache, the admission hook, the command runner
//! and the one error type. Everything else builds on this crate.

pub mod admission;
pub mod artifact;
pub mod cache;
pub mod caps;
pub mod epoch;
pub mod error;
pub mod host;
pub mod inspect;
pub mod limits;
pub mod models;
pub mod run;
pub mod runtime;
pub mod sandbox;
pub mod store;
pub mod wasi;

pub use admission::{
    Admission, AdmissionContext, AdmissionRequest, AllOf, Denied, Grant, GrantRequested,
};
pub use artifact::{ArtifactFacts, ArtifactKind, Format};
pub use caps::{Capabilities, DirGrant, NetPattern};
pub use error::{Error, ErrorKind, Result};
pub use host::{
    ComponentState, Extension, GuestState, Host, Imports, Interrupt, ModuleState, Setup, Stdio,
    StoreOptions, Stream,
};
pub use limits::Limits;
pub use run::{HostSandbox, Invoke, RunOptions, RunOutcome};
#[cfg(feature = "compiler")]
pub use runtime::build_engine;
pub use runtime::{
    CacheOutcome, Compiled, EngineOptions, LoadOptions, Loaded, PoolingOptions, Runtime,
    RuntimeBuilder,
};
