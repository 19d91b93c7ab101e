//! The witx ABI (`wasi_ephemeral_nn`), for core modules (wasm32-wasip1).

use wasi_nn::{ExecutionTarget, GraphBuilder, GraphEncoding};

use crate::{Input, TensorType};

pub type Graph = wasi_nn::Graph;

/// The most f32 values read from one output (1 GiB).
const MAX_OUTPUT_VALUES: usize = 1 << 28;

/// The crate's message for an error, without its fixed prefix.
fn detail(e: wasi_nn::Error) -> String {
    match &e {
        wasi_nn::Error::BackendError(b) => b
            .to_string()
            .trim_start_matches("WASI-NN Backend Error: ")
            .to_string(),
        wasi_nn::Error::IoError(io) => io.to_string(),
    }
}

pub fn load_by_name(name: &str) -> Result<Graph, String> {
    GraphBuilder::new(GraphEncoding::Onnx, ExecutionTarget::CPU)
        .build_from_cache(name)
        .map_err(detail)
}

pub fn load_bytes(bytes: &[u8], gpu: bool) -> Result<Graph, String> {
    let target = if gpu {
        ExecutionTarget::GPU
    } else {
        ExecutionTarget::CPU
    };
    GraphBuilder::new(GraphEncoding::Onnx, target)
        .build_from_bytes([bytes])
        .map_err(detail)
}

pub fn run_f32(
    graph: &Graph,
    inputs: &[Input],
    outputs: &[usize],
) -> Result<Vec<Vec<f32>>, String> {
    let mut ctx = graph
        .init_execution_context()
        .map_err(|e| format!("cannot create an execution context: {}", detail(e)))?;
    for (i, input) in inputs.iter().enumerate() {
        let ty = match input.ty {
            TensorType::F32 => wasi_nn::TensorType::F32,
            TensorType::I64 => wasi_nn::TensorType::I64,
        };
        ctx.set_input(i, ty, &input.dims, input.bytes)
            .map_err(|e| {
                format!(
                    "input {} (shape {:?}) rejected: {}",
                    input.name,
                    input.dims,
                    detail(e)
                )
            })?;
    }
    ctx.compute()
        .map_err(|e| format!("inference failed: {}", detail(e)))?;
    let mut results = Vec::with_capacity(outputs.len());
    for (i, &expected) in outputs.iter().enumerate() {
        // wasi-nn tells the size only once the buffer is large enough:
        // start from what the caller expects, grow on TOO_LARGE.
        let mut len = expected.max(1);
        let values = loop {
            let mut buf = vec![0f32; len];
            match ctx.get_output(i, &mut buf) {
                Ok(bytes) if bytes % 4 == 0 && bytes / 4 <= len => {
                    buf.truncate(bytes / 4);
                    break buf;
                }
                Ok(bytes) => return Err(format!("output {i} has {bytes} bytes, not f32 values")),
                Err(e) if e.to_string().contains("Too Large") && len < MAX_OUTPUT_VALUES => {
                    len = (len * 4).min(MAX_OUTPUT_VALUES);
                }
                Err(e) => return Err(format!("cannot read output {i}: {}", detail(e))),
            }
        };
        results.push(values);
    }
    Ok(results)
}
