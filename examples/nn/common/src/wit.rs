//! `wasi:nn` (WIT), for components (wasm32-wasip2).

use crate::{Input, TensorType};

wit_bindgen::generate!({
    path: "wit",
    world: "ml",
});

use wasi::nn::errors::Error as NnError;
use wasi::nn::graph::{self, ExecutionTarget, GraphEncoding};
use wasi::nn::tensor::{Tensor, TensorType as WitType};

pub type Graph = graph::Graph;

/// The host's message, else the error's code.
fn detail(e: NnError) -> String {
    let data = e.data();
    if data.is_empty() {
        format!("{:?}", e.code())
    } else {
        data
    }
}

pub fn load_by_name(name: &str) -> Result<Graph, String> {
    graph::load_by_name(name).map_err(detail)
}

pub fn load_bytes(bytes: &[u8], gpu: bool) -> Result<Graph, String> {
    let target = if gpu {
        ExecutionTarget::Gpu
    } else {
        ExecutionTarget::Cpu
    };
    graph::load(&[bytes.to_vec()], GraphEncoding::Onnx, target).map_err(detail)
}

pub fn run_f32(
    graph: &Graph,
    inputs: &[Input],
    outputs: &[usize],
) -> Result<Vec<Vec<f32>>, String> {
    let ctx = graph
        .init_execution_context()
        .map_err(|e| format!("cannot create an execution context: {}", detail(e)))?;
    let mut named = Vec::with_capacity(inputs.len());
    for input in inputs {
        let dims = input
            .dims
            .iter()
            .map(|&d| {
                u32::try_from(d)
                    .map_err(|_| format!("input {}: dimension {d} is too large", input.name))
            })
            .collect::<Result<Vec<u32>, String>>()?;
        let ty = match input.ty {
            TensorType::F32 => WitType::Fp32,
            TensorType::I64 => WitType::I64,
        };
        named.push((input.name.to_string(), Tensor::new(&dims, ty, input.bytes)));
    }
    let results = ctx
        .compute(named)
        .map_err(|e| format!("inference failed: {}", detail(e)))?;
    if results.len() < outputs.len() {
        return Err(format!(
            "{} outputs, expected at least {}",
            results.len(),
            outputs.len()
        ));
    }
    results
        .into_iter()
        .take(outputs.len())
        .map(|(name, tensor)| {
            if tensor.ty() != WitType::Fp32 {
                return Err(format!("output {name} is {:?}, not f32", tensor.ty()));
            }
            let bytes = tensor.data();
            if bytes.len() % 4 != 0 {
                return Err(format!(
                    "output {name} has {} bytes, not f32 values",
                    bytes.len()
                ));
            }
            Ok(bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        })
        .collect()
}
