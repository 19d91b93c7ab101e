//! Loading and running an ONNX model with tract.
//!
//! This file is also compiled into the host crate `wasmlayer-nn` (its
//! `pack` module includes it), so that `pack` checks a model exactly as the
//! runner loads it, and fails with the same message.

use std::fmt::Write as _;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// The tract release the runner is built with.
pub const TRACT_VERSION: &str = "0.23.9";

/// A model that tract parsed, with every operator known to it.
pub struct Loaded {
    pub model: InferenceModel,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
}

/// An input or output of a model as the model declares it.
#[derive(Debug, Clone)]
pub struct Io {
    pub name: String,
    /// Element type; `None` when the model leaves it open.
    pub datum_type: Option<DatumType>,
    /// Dimensions: a size, the name of a symbolic one, or `None` for one
    /// the model leaves open; `None` for an unknown rank.
    pub shape: Option<Vec<Option<String>>>,
}

impl std::fmt::Display for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dt = self.datum_type.map(dtype_name).unwrap_or("?");
        write!(f, "{} {dt} ", self.name)?;
        match &self.shape {
            None => f.write_str("[...]"),
            Some(dims) => {
                f.write_str("[")?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(d.as_deref().unwrap_or("?"))?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Parses `bytes` as an ONNX model. Errors say whether the bytes are not an
/// ONNX model at all, or name the operators tract does not implement.
pub fn load(bytes: &[u8]) -> Result<Loaded, String> {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("If", branch_if);
    let proto = onnx
        .proto_model_for_read(&mut &*bytes)
        .map_err(|e| format!("not an ONNX model: {e}"))?;
    let Some(graph) = proto.graph.as_ref() else {
        return Err("not an ONNX model: it has no graph".into());
    };
    if proto.opset_import.is_empty() && graph.node.is_empty() {
        return Err("not an ONNX model: it has no operators and no opset".into());
    }
    let unknown = unsupported_in_proto(&onnx, graph);
    if !unknown.is_empty() {
        return Err(unsupported_message(&unknown));
    }
    let model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| format!("tract {TRACT_VERSION} cannot load the model: {e:#}"))?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .map(declared)
        .collect();
    let outputs = graph.output.iter().map(declared).collect();
    Ok(Loaded {
        model,
        inputs,
        outputs,
    })
}

/// The operators of `graph`, and of the graphs nested in its attributes
/// (`If` branches, `Scan` bodies), that tract has no implementation of, as
/// (operator, node name). Tract looks operators up by type alone, whatever
/// their domain.
fn unsupported_in_proto(
    onnx: &tract_onnx::Onnx,
    graph: &tract_onnx::pb::GraphProto,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for node in &graph.node {
        if !onnx.op_register.0.contains_key(&node.op_type) {
            out.push((node.op_type.clone(), node.name.clone()));
        }
        for attr in &node.attribute {
            for g in attr.g.iter().chain(attr.graphs.iter()) {
                out.extend(unsupported_in_proto(onnx, g));
            }
        }
    }
    out
}

fn unsupported_message(unknown: &[(String, String)]) -> String {
    let mut ops: Vec<&str> = unknown.iter().map(|(op, _)| op.as_str()).collect();
    ops.sort();
    ops.dedup();
    let mut msg = format!(
        "unsupported ONNX operator{} {}: tract {TRACT_VERSION} cannot run this model (node{} ",
        if ops.len() == 1 { "" } else { "s" },
        ops.iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", "),
        if unknown.len() == 1 { "" } else { "s" },
    );
    for (i, (op, node)) in unknown.iter().take(5).enumerate() {
        if i > 0 {
            msg.push_str(", ");
        }
        let _ = write!(msg, "{node:?} ({op})");
    }
    if unknown.len() > 5 {
        let _ = write!(msg, ", and {} more", unknown.len() - 5);
    }
    msg.push(')');
    msg
}

/// An input or output as the ONNX graph declares it.
fn declared(v: &tract_onnx::pb::ValueInfoProto) -> Io {
    use tract_onnx::pb::{tensor_proto::DataType, tensor_shape_proto::dimension, type_proto};
    let tensor = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => Some(t),
        _ => None,
    };
    let datum_type = tensor
        .and_then(|t| DataType::try_from(t.elem_type).ok())
        .and_then(|t| DatumType::try_from(t).ok());
    let shape = tensor.and_then(|t| t.shape.as_ref()).map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(dimension::Value::DimValue(n)) => Some(n.to_string()),
                Some(dimension::Value::DimParam(p)) if !p.is_empty() => Some(p.clone()),
                _ => None,
            })
            .collect()
    });
    Io {
        name: v.name.clone(),
        datum_type,
        shape,
    }
}

/// What a plan is specialised for: each input's type and shape, and the
/// value of each control input. Control inputs are scalar integers and
/// booleans (a sample rate, a flag): their values often decide which branch
/// of an `If` runs, and tract analyses a model fully only once it knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature(pub Vec<(DatumType, Vec<usize>, Option<Tensor>)>);

impl Signature {
    pub fn of<'a>(inputs: impl IntoIterator<Item = &'a Tensor>) -> Signature {
        Signature(
            inputs
                .into_iter()
                .map(|t| {
                    let dt = t.datum_type();
                    let value = (is_control(dt, t.shape())).then(|| t.clone());
                    (dt, t.shape().to_vec(), value)
                })
                .collect(),
        )
    }
}

/// Whether an input of this type and shape is a control input (see
/// [`Signature`]).
pub fn is_control(dt: DatumType, shape: &[usize]) -> bool {
    shape.is_empty() && (dt.is_integer() || dt == DatumType::Bool)
}

/// Analyses and optimises the model for a signature of its inputs. Errors
/// carry tract's whole chain, which names the node and operator that
/// failed.
pub fn plan(
    model: &InferenceModel,
    signature: &Signature,
) -> Result<Arc<TypedRunnableModel>, String> {
    let mut model = model.clone();
    for (i, (dt, shape, value)) in signature.0.iter().enumerate() {
        let fact = match value {
            Some(v) => InferenceFact::from(v.clone()),
            None => InferenceFact::dt_shape(*dt, shape.as_slice()),
        };
        model
            .set_input_fact(i, fact)
            .map_err(|e| format!("{e:#}"))?;
    }
    model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("tract {TRACT_VERSION} cannot run the model: {e:#}"))
}

/// Builds ONNX `If` as [`BranchIf`].
fn branch_if(
    ctx: &tract_onnx::model::ParsingContext,
    node: &tract_onnx::pb::NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let then = ctx.parse_graph(node.get_attr::<&tract_onnx::pb::GraphProto>("then_branch")?)?;
    let els = ctx.parse_graph(node.get_attr::<&tract_onnx::pb::GraphProto>("else_branch")?)?;
    // The node's inputs: the condition, then the outer values either branch
    // reads.
    let outer: Vec<String> = then
        .unresolved_inputs
        .iter()
        .chain(&els.unresolved_inputs)
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mapping = |unresolved: &[String]| -> Vec<usize> {
        unresolved
            .iter()
            .filter_map(|i| outer.iter().position(|s| s == i).map(|p| p + 1))
            .collect()
    };
    let then_mapping = mapping(&then.unresolved_inputs);
    let else_mapping = mapping(&els.unresolved_inputs);
    let inner = tract_onnx::ops::logic::If::new(
        then.model,
        then_mapping.clone(),
        els.model,
        else_mapping.clone(),
    );
    Ok((
        Box::new(BranchIf {
            inner,
            then_mapping,
            else_mapping,
        }),
        outer,
    ))
}

/// ONNX `If` whose condition may be known when tract analyses the model
/// (from the value of a control input, see [`Signature`]): then only the
/// branch taken is analysed and kept, as the other one may not even be
/// valid for the shapes at hand (Silero VAD's 8 kHz branch given a 16 kHz
/// frame). With the condition unknown it is tract's own `If`, which
/// analyses both.
#[derive(Debug, Clone)]
struct BranchIf {
    inner: tract_onnx::ops::logic::If,
    then_mapping: Vec<usize>,
    else_mapping: Vec<usize>,
}

impl PartialEq for BranchIf {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl Eq for BranchIf {}

impl BranchIf {
    /// The branch a known condition takes, and its inputs' positions among
    /// the node's.
    fn branch(&self, cond: &Tensor) -> TractResult<(&InferenceModel, &[usize])> {
        Ok(if cond.cast_to_scalar::<bool>()? {
            (&self.inner.then_body, &self.then_mapping)
        } else {
            (&self.inner.else_body, &self.else_mapping)
        })
    }
}

impl Op for BranchIf {
    fn name(&self) -> StaticName {
        "If".into()
    }

    not_a_typed_op!();
}

impl EvalOp for BranchIf {
    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.inner.eval(ctx, inputs)
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        self.inner.eval_out_of_plan(inputs)
    }
}

impl InferenceOp for BranchIf {
    fn infer_facts(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(
        TVec<InferenceFact>,
        TVec<InferenceFact>,
        TVec<InferenceFact>,
    )> {
        let Some(cond) = inputs[0].value.concretize() else {
            return self.inner.infer_facts(inputs, outputs, observed);
        };
        let (body, mapping) = if cond.cast_to_scalar::<bool>()? {
            (&mut self.inner.then_body, &self.then_mapping)
        } else {
            (&mut self.inner.else_body, &self.else_mapping)
        };
        let mut inputs: TVec<InferenceFact> = inputs.into_iter().cloned().collect();
        let mut outputs: TVec<InferenceFact> = outputs.into_iter().cloned().collect();
        loop {
            let mut changed = false;
            for (body_ix, outer_ix) in mapping.iter().enumerate() {
                changed |= body
                    .input_fact_mut(body_ix)?
                    .unify_with_mut(&mut inputs[*outer_ix])?;
            }
            for (ix, output) in outputs.iter_mut().enumerate() {
                changed |= body.output_fact_mut(ix)?.unify_with_mut(output)?;
            }
            changed |= body.analyse(false)?;
            if !changed {
                return Ok((inputs, outputs, observed.into_iter().cloned().collect()));
            }
        }
    }

    fn nboutputs(&self) -> TractResult<usize> {
        self.inner.nboutputs()
    }

    fn to_typed(
        &self,
        source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        let Some(cond) = source.outlet_fact(node.inputs[0])?.value.concretize() else {
            return self.inner.to_typed(source, node, target, mapping);
        };
        let (body, body_mapping) = self.branch(&cond)?;
        let body = body.clone().into_typed()?;
        let inputs: TVec<OutletId> = node.inputs.iter().map(|o| mapping[o]).collect();
        // Both ways the branch taken: tract inlines it, the condition being
        // a constant.
        let op = tract_onnx::tract_core::ops::logic::IfThenElse {
            then_body: body.clone(),
            then_input_mapping: body_mapping.to_vec(),
            else_body: body,
            else_input_mapping: body_mapping.to_vec(),
        };
        target.wire_node(&node.name, op, &inputs)
    }

    as_op!();
}

/// The NumPy-style name of an element type.
pub fn dtype_name(dt: DatumType) -> &'static str {
    match dt.unquantized() {
        DatumType::Bool => "bool",
        DatumType::U8 => "uint8",
        DatumType::U16 => "uint16",
        DatumType::U32 => "uint32",
        DatumType::U64 => "uint64",
        DatumType::I8 => "int8",
        DatumType::I16 => "int16",
        DatumType::I32 => "int32",
        DatumType::I64 => "int64",
        DatumType::F16 => "float16",
        DatumType::F32 => "float32",
        DatumType::F64 => "float64",
        DatumType::TDim => "int64",
        DatumType::String => "string",
        _ => "?",
    }
}
