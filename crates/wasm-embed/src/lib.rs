//! Wasm runtimes with data linked in.
//!
//! Some Wasmlayer artifacts are a runtime built once, for a Wasm target, with
//! per-artifact data linked into it: a policy module is the Rego runtime
//! with a policy bundle, a packed model is an inference runner with an ONNX
//! model. This crate holds the two halves those share:
//!
//! - [`build`]: building a runtime crate with a nested cargo from a build
//!   script (own target directory, the outer build's settings kept out,
//!   shrunk with `wasm-opt`), for `include_bytes!`;
//! - [`link()`] (feature `link`): linking data into the runtime in place of
//!   two function imports, `len: () -> i32` and `copy: (i32) -> ()`, which
//!   become defined functions over a passive data segment.

pub mod build;
#[cfg(feature = "link")]
mod link;

#[cfg(feature = "link")]
pub use link::{link, Embed, MemoryShrink};
