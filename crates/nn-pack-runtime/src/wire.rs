//! The binary encoding of tensors at the `infer` export (see the crate
//! documentation). All integers are little-endian.

use tract_onnx::prelude::*;

/// Element type codes.
const DTYPES: &[(u32, DatumType)] = &[
    (1, DatumType::F32),
    (2, DatumType::F64),
    (3, DatumType::I64),
    (4, DatumType::I32),
    (5, DatumType::U8),
    (6, DatumType::I8),
    (7, DatumType::U16),
    (8, DatumType::I16),
    (9, DatumType::U32),
    (10, DatumType::U64),
    (11, DatumType::Bool),
    (12, DatumType::F16),
];

/// The element type with this code.
pub fn dtype(code: u32) -> Option<DatumType> {
    DTYPES.iter().find(|(c, _)| *c == code).map(|(_, dt)| *dt)
}

/// The code of this element type.
pub fn code(dt: DatumType) -> Option<u32> {
    DTYPES.iter().find(|(_, d)| *d == dt).map(|(c, _)| *c)
}

/// The bytes a tensor of this type and shape holds, if they can be counted.
pub fn byte_len(dt: DatumType, shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(dt.size_of(), |n, d| n.checked_mul(*d))
}

/// A tensor of `dt` and `shape` over `data`, which holds exactly its
/// elements (little-endian); `what` names it in errors.
pub fn tensor(what: &str, dt: DatumType, shape: &[usize], data: &[u8]) -> Result<Tensor, String> {
    if shape.len() > 32 {
        return Err(format!("{what}: rank {} is too large", shape.len()));
    }
    let len = byte_len(dt, shape).ok_or_else(|| format!("{what}: shape {shape:?} is too large"))?;
    if data.len() != len {
        return Err(format!(
            "{what}: {} bytes of data, {} {shape:?} holds {len}",
            data.len(),
            crate::model::dtype_name(dt)
        ));
    }
    // Safety: `data` holds the tensor's elements, little-endian, the
    // layout of the target.
    unsafe { Tensor::from_raw_dt(dt, shape, data) }.map_err(|e| format!("{what}: {e:#}"))
}

/// Status word of a response.
pub const OK: u32 = 0;
pub const ERROR: u32 = 1;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated request".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
}

/// Decodes a request: `count: u32`, then `count` tensors, each
/// `name_len: u32, name: [u8; name_len], dtype: u32, rank: u32,
/// dims: [u64; rank], data`.
pub fn decode(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let mut r = Reader(bytes);
    let count = r.u32()?;
    let mut out = Vec::new();
    for i in 0..count {
        let name_len = r.u32()? as usize;
        let name = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| format!("tensor {i}: the name is not UTF-8"))?
            .to_string();
        let code = r.u32()?;
        let dt = dtype(code).ok_or_else(|| format!("tensor {i}: unknown element type code {code}"))?;
        let rank = r.u32()? as usize;
        if rank > 32 {
            return Err(format!("tensor {i}: rank {rank} is too large"));
        }
        let shape = (0..rank)
            .map(|_| {
                r.u64()
                    .and_then(|d| usize::try_from(d).map_err(|_| "dimension too large".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let len = byte_len(dt, &shape).ok_or_else(|| format!("tensor {i}: shape {shape:?} is too large"))?;
        let data = r
            .take(len)
            .map_err(|_| format!("tensor {i}: truncated data"))?;
        out.push((name, tensor(&format!("tensor {i}"), dt, &shape, data)?));
    }
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the last tensor", r.0.len()));
    }
    Ok(out)
}

/// Encodes a successful response: `OK`, then the tensors as in a request.
pub fn encode(tensors: &[(String, Tensor)]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    out.extend_from_slice(&OK.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
    for (name, t) in tensors {
        let t = crate::npy::plain(t)?;
        let code = code(t.datum_type()).ok_or_else(|| format!("output {name}: unsupported type {:?}", t.datum_type()))?;
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&code.to_le_bytes());
        out.extend_from_slice(&(t.rank() as u32).to_le_bytes());
        for d in t.shape() {
            out.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        out.extend_from_slice(t.as_bytes());
    }
    Ok(out)
}

/// Encodes an error response: `ERROR`, then the UTF-8 message.
pub fn encode_error(message: &str) -> Vec<u8> {
    let mut out = ERROR.to_le_bytes().to_vec();
    out.extend_from_slice(message.as_bytes());
    out
}
