//! The `packed-model` world (wit/model.wit): `info` and `infer` for a host
//! that runs the packed model as a component (`nn pack --component`). The
//! same engine as the core `infer` export, with tensors as WIT records.

use tract_onnx::prelude::*;

use crate::{construct, model, wire, with_engine};

wit_bindgen::generate!({
    path: "wit",
    world: "packed-model",
});

use exports::wasmlayer::nn::model::{Guest, Tensor as WitTensor, TensorType};

/// The WIT element types in the order of their codes in the wire encoding
/// (code = position + 1).
const TYPES: [TensorType; 12] = [
    TensorType::F32,
    TensorType::F64,
    TensorType::I64,
    TensorType::I32,
    TensorType::U8,
    TensorType::I8,
    TensorType::U16,
    TensorType::I16,
    TensorType::U32,
    TensorType::U64,
    TensorType::Bool,
    TensorType::F16,
];

fn to_tract(i: usize, t: WitTensor) -> Result<(String, Tensor), String> {
    let what = if t.name.is_empty() { format!("input {i}") } else { format!("input {}", t.name) };
    let code = TYPES.iter().position(|ty| *ty == t.ty).unwrap_or(TYPES.len()) as u32 + 1;
    let dt = wire::dtype(code).ok_or_else(|| format!("{what}: unsupported element type {:?}", t.ty))?;
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("{what}: dimension {d} is too large")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((t.name.clone(), wire::tensor(&what, dt, &shape, &t.data)?))
}

fn to_wit(name: &str, t: &Tensor) -> Result<WitTensor, String> {
    let t = crate::npy::plain(t)?;
    let ty = wire::code(t.datum_type())
        .and_then(|c| TYPES.get(c as usize - 1).copied())
        .ok_or_else(|| format!("output {name}: unsupported type {}", model::dtype_name(t.datum_type())))?;
    Ok(WitTensor {
        name: name.to_string(),
        ty,
        dims: t.shape().iter().map(|&d| d as u64).collect(),
        data: t.as_bytes().to_vec(),
    })
}

struct Packed;

impl Guest for Packed {
    fn info() -> Result<String, String> {
        construct();
        with_engine(|e| Ok(e.info()))
    }

    fn infer(inputs: Vec<WitTensor>) -> Result<Vec<WitTensor>, String> {
        construct();
        let inputs = inputs.into_iter().enumerate().map(|(i, t)| to_tract(i, t)).collect::<Result<Vec<_>, _>>()?;
        let outputs = with_engine(|e| e.run(inputs))?;
        outputs.iter().map(|(name, t)| to_wit(name, t)).collect()
    }
}

export!(Packed);
