//! The Rego compiler of `policy build`: Rego to WebAssembly code behind
//! OPA's Wasm ABI.
//!
//! 1. regorus parses the modules (its parser and AST);
//! 2. [`lower`] turns rules, functions and queries into a [`plan::Plan`]:
//!    functions of statements over locals, with blocks, scans, calls and
//!    early exits (OPA's planner IR is the model);
//! 3. [`codegen`] generates a Wasm function per plan function and links
//!    them into the value runtime (crates/rego-runtime: values, JSON,
//!    builtins and the ABI exports, built for wasm32 by this crate's build
//!    script), keeping only the runtime functions the policy reaches;
//! 4. the bundle (entrypoints, host builtins, data, constants) is linked in
//!    as a passive data segment, with the ABI version globals, as for the
//!    interpreter module (see [`crate::wasm_build`]).
//!
//! A construct the compiler does not support fails the build with the
//! construct and its source location; `policy build --interpreter` builds
//! the interpreter module instead.

pub mod codegen;
pub mod lower;
pub mod plan;

use serde_json::Value as Json;
use wasmlayer_core::Error;

/// The value runtime compiled policies link into.
pub const RUNTIME_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rego-runtime.wasm"));

pub(crate) fn builtin_arity(name: &str) -> Option<u8> {
    crate::wasm_build::builtin_arity(name)
}

/// Compiles checked modules. `entrypoints` are (ABI name, path components,
/// is a rule).
pub(crate) fn compile(
    parsed: &[regorus::unstable::Module],
    data: &Json,
    entrypoints: &[(String, Vec<String>)],
) -> Result<Vec<u8>, Error> {
    let info = codegen::runtime_info(RUNTIME_WASM)
        .map_err(|e| Error::policy(format!("the policy runtime is damaged: {e:#}")))?;
    let mut lw = lower::Lowerer::new(parsed, info.builtins).map_err(Error::policy)?;
    for (name, path) in entrypoints {
        lw.entrypoint(path, name).map_err(Error::policy)?;
    }
    let (plan, cached) = lw.finish();
    let linked = codegen::link(RUNTIME_WASM, &plan, &cached)
        .map_err(|e| Error::policy(format!("cannot generate the policy module: {e:#}")))?;
    let bundle = serde_json::json!({
        "entrypoints": entrypoints.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "builtins": plan.host_builtins.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "data": match data {
            Json::Null => Json::Object(Default::default()),
            d => d.clone(),
        },
        "consts": plan.consts,
    });
    let bundle = serde_json::to_vec(&bundle)
        .map_err(|e| Error::policy(format!("cannot encode the policy bundle: {e}")))?;
    crate::wasm_build::link(&linked, &bundle)
        .map_err(|e| Error::policy(format!("cannot link the policy module: {e:#}")))
}
