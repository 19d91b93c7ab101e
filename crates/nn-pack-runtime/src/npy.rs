//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): little-endian or
//! single-byte element types, C order.

use tract_onnx::prelude::*;

/// A tensor read from a `.npy` file.
pub fn read(bytes: &[u8]) -> Result<Tensor, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a NumPy .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let descr = dict_value(header, "descr").ok_or("the .npy header has no 'descr'")?;
    let descr = quoted(descr).ok_or("the .npy 'descr' is not a string")?;
    let dt = datum_type(descr)
        .ok_or_else(|| format!("unsupported .npy element type {descr:?} (supported: f2, f4, f8, i1, i2, i4, i8, u1, u2, u4, u8, b1; little-endian)"))?;
    let fortran =
        dict_value(header, "fortran_order").ok_or("the .npy header has no 'fortran_order'")?;
    if fortran.starts_with("True") {
        return Err("Fortran-order .npy arrays are not supported; save it in C order".into());
    }
    let shape = dict_value(header, "shape").ok_or("the .npy header has no 'shape'")?;
    let shape = shape
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad .npy dimension {s:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = &bytes[start + header_len..];
    let expected = shape
        .iter()
        .try_fold(dt.size_of(), |n, d| n.checked_mul(*d))
        .ok_or("the .npy shape is too large")?;
    if data.len() < expected {
        return Err(format!(
            "truncated .npy data: {} bytes for shape {shape:?} of {descr}, expected {expected}",
            data.len()
        ));
    }
    // Safety: `data` holds `expected` bytes of `dt` in little-endian order,
    // the layout of the target.
    unsafe { Tensor::from_raw_dt(dt, &shape, &data[..expected]) }.map_err(|e| format!("{e:#}"))
}

/// The tensor as a `.npy` file (format 1.0, or 2.0 for a long header).
pub fn write(t: &Tensor) -> Result<Vec<u8>, String> {
    let t = plain(t)?;
    let descr = descr(t.datum_type()).ok_or("no .npy element type for this tensor")?;
    let shape = match t.shape() {
        [d] => format!("({d},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // The data starts at a multiple of 64 bytes; the header ends with '\n'.
    // Format 1.0 gives the header's length in 16 bits, 2.0 in 32.
    let padded_from = |prefix: usize| (prefix + header.len() + 1).div_ceil(64) * 64;
    let v1 = padded_from(10) - 10 <= u16::MAX as usize;
    let prefix = if v1 { 10 } else { 12 };
    let padded = padded_from(prefix);
    header.push_str(&" ".repeat(padded - prefix - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(padded + t.as_bytes().len());
    out.extend_from_slice(b"\x93NUMPY");
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(t.as_bytes());
    Ok(out)
}

/// The tensor in a plain NumPy element type: quantized types as their
/// storage type, dimensions as `int64`.
pub fn plain(t: &Tensor) -> Result<std::borrow::Cow<'_, Tensor>, String> {
    let dt = t.datum_type();
    if dt == DatumType::TDim {
        return t.cast_to::<i64>().map_err(|e| format!("{e:#}"));
    }
    if dt.is_quantized() {
        let mut t = t.clone();
        // Safety: a quantized type has the layout of its storage type.
        unsafe { t.set_datum_type(dt.unquantized()) };
        return Ok(std::borrow::Cow::Owned(t));
    }
    match descr(dt) {
        Some(_) => Ok(std::borrow::Cow::Borrowed(t)),
        None => Err(format!("outputs of type {dt:?} are not supported")),
    }
}

fn descr(dt: DatumType) -> Option<&'static str> {
    Some(match dt {
        DatumType::Bool => "|b1",
        DatumType::U8 => "|u1",
        DatumType::I8 => "|i1",
        DatumType::U16 => "<u2",
        DatumType::I16 => "<i2",
        DatumType::U32 => "<u4",
        DatumType::I32 => "<i4",
        DatumType::U64 => "<u8",
        DatumType::I64 => "<i8",
        DatumType::F16 => "<f2",
        DatumType::F32 => "<f4",
        DatumType::F64 => "<f8",
        _ => return None,
    })
}

fn datum_type(descr: &str) -> Option<DatumType> {
    let (order, code) = descr.split_at(1.min(descr.len()));
    let one_byte = matches!(code, "b1" | "u1" | "i1");
    if !(order == "<" || order == "|" && one_byte || order == "=") {
        return None;
    }
    Some(match code {
        "b1" => DatumType::Bool,
        "u1" => DatumType::U8,
        "i1" => DatumType::I8,
        "u2" => DatumType::U16,
        "i2" => DatumType::I16,
        "u4" => DatumType::U32,
        "i4" => DatumType::I32,
        "u8" => DatumType::U64,
        "i8" => DatumType::I64,
        "f2" => DatumType::F16,
        "f4" => DatumType::F32,
        "f8" => DatumType::F64,
        _ => return None,
    })
}

/// The text of `key`'s value in the header's Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// The string literal at the start of `s`.
fn quoted(s: &str) -> Option<&str> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    s[1..].split(quote).next()
}
