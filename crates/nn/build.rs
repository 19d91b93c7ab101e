//! Builds the runner of packed models (crates/nn-pack-runtime) for
//! wasm32-wasip1 with a nested cargo, shrinks it with `wasm-opt -Os`, and
//! leaves it in OUT_DIR for `include_bytes!` (`pack::RUNNER_WASM`); see
//! `wasmlayer_wasm_embed::build`.
//!
//! The nested build has its own target directory, `<target>/nn-pack-runtime`,
//! and runs from the runner's directory so that its `.cargo/config.toml`
//! (target, SIMD) applies.

use std::env;
use std::path::PathBuf;
use wasmlayer_wasm_embed::build::Runtime;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let mut features = wasmlayer_wasm_embed::build::RUST_WASM_FEATURES.to_vec();
    features.push("--enable-simd");
    Runtime {
        what: "the nn pack runner",
        dir: manifest_dir.join("..").join("nn-pack-runtime"),
        target: "wasm32-wasip1",
        artifact: "wasmlayer-nn-pack-runtime.wasm",
        target_subdir: "nn-pack-runtime",
        out_file: "nn-pack-runtime.wasm",
        // Rust's defaults for the target, and SIMD (tract's Wasm kernels).
        wasm_opt_features: &features,
    }
    .build();
}
