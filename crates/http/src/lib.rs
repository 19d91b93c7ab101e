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
