//! `wasmlayer serve`: wasi:http proxy components served with a fresh
//! instance per request from a pooling allocator, per-request limits,
//! metering, Prometheus metrics, hot reload and draining.

pub mod app;
pub mod framing;
pub mod manifest;
pub mod metrics;
pub mod p3;
pub mod pool;
pub mod server;

pub use manifest::{Manifest, RouteSpec, ServerSettings};
pub use server::{serve, ServeOptions, Source};

/// Makes the admission a manifest's `policy = [...]` names, from its files.
/// The CLI gives one backed by the policy crate; this crate does not
/// evaluate policies itself.
pub type PolicyLoader = std::sync::Arc<
    dyn Fn(
            &[std::path::PathBuf],
        ) -> wasmlayer_core::Result<std::sync::Arc<dyn wasmlayer_core::Admission>>
        + Send
        + Sync,
>;
