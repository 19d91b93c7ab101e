//! Builds the two policy runtimes, the interpreter (crates/policy-runtime)
//! and the value runtime of compiled policies (crates/rego-runtime), for
//! wasm32-unknown-unknown with a nested cargo, shrinks it with
//! `wasm-opt -Os`, and leaves it in OUT_DIR for `include_bytes!`
//! (`wasm_build::RUNTIME_WASM`); see `wasmlayer_wasm_embed::build`.
//!
//! The nested build has its own target directory, `<target>/policy-runtime`,
//! and runs from the runtime's directory so that its `.cargo/config.toml`
//! (link flags) applies.

use std::env;
use std::path::PathBuf;
use wasmlayer_wasm_embed::build::Runtime;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    Runtime {
        what: "the policy runtime",
        dir: manifest_dir.join("..").join("policy-runtime"),
        target: "wasm32-unknown-unknown",
        artifact: "wasmlayer_policy_runtime.wasm",
        target_subdir: "policy-runtime",
        out_file: "policy-runtime.wasm",
        // Rust's defaults for the target.
        wasm_opt_features: wasmlayer_wasm_embed::build::RUST_WASM_FEATURES,
    }
    .build();
    let mut rego_runtime_features = wasmlayer_wasm_embed::build::RUST_WASM_FEATURES.to_vec();
    rego_runtime_features.push("--enable-simd");
    Runtime {
        what: "the compiled-policy runtime",
        dir: manifest_dir.join("..").join("rego-runtime"),
        target: "wasm32-unknown-unknown",
        artifact: "wasmlayer_rego_runtime.wasm",
        target_subdir: "rego-runtime",
        out_file: "rego-runtime.wasm",
        // Rust's defaults for the target, and SIMD (the input validator).
        wasm_opt_features: &rego_runtime_features,
    }
    .build();
}
