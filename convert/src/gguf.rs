//! A streaming GGUF v3 writer.
//!
//! The header (KV metadata and tensor infos) is written first; since every
//! tensor's byte size follows from its type and shape, all offsets are known
//! up front and the tensor data can then be streamed in order, in pieces,
//! without seeking. Layout rules follow ggml's `gguf.cpp` reader, which is
//! stricter than the spec: offsets are the running sum of each tensor's size
//! padded to [`ALIGNMENT`], data starts at the aligned end of the infos, and
//! the last tensor is padded too.

use std::io::{self, Write};

use crate::quant::GgmlType;

/// `GGUF_DEFAULT_ALIGNMENT`.
pub const ALIGNMENT: u64 = 32;
const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;

/// A typed array value (all elements share one type).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaArray {
    /// UINT32 elements.
    U32(Vec<u32>),
    /// INT32 elements.
    I32(Vec<i32>),
    /// FLOAT32 elements.
    F32(Vec<f32>),
    /// STRING elements.
    Str(Vec<String>),
}

/// A metadata value. Counts, ids and sizes are `U32`, as llama.cpp expects.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// UINT32
    U32(u32),
    /// INT32
    I32(i32),
    /// FLOAT32
    F32(f32),
    /// BOOL
    Bool(bool),
    /// STRING
    Str(String),
    /// ARRAY
    Array(MetaArray),
}

impl MetaValue {
    fn type_id(&self) -> u32 {
        match self {
            Self::U32(_) => 4,
            Self::I32(_) => 5,
            Self::F32(_) => 6,
            Self::Bool(_) => 7,
            Self::Str(_) => 8,
            Self::Array(_) => 9,
        }
    }
}

/// Description of one tensor to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// GGUF tensor name (< 64 bytes).
    pub name: String,
    /// Shape in numpy/PyTorch order (outermost first); reversed on disk.
    pub shape: Vec<usize>,
    /// Element type.
    pub ty: GgmlType,
}

impl TensorInfo {
    /// Bytes of tensor data (unpadded), or `None` if the row length is not a
    /// whole number of blocks.
    pub fn nbytes(&self) -> Option<u64> {
        let ne0 = *self.shape.last().unwrap_or(&1);
        let rows: usize = self.shape.iter().rev().skip(1).product();
        let row = self.ty.row_size(ne0)?;
        (row as u64).checked_mul(rows as u64)
    }
}

/// Rounds `o` up to a multiple of [`ALIGNMENT`].
pub fn align(o: u64) -> u64 {
    o + (ALIGNMENT - o % ALIGNMENT) % ALIGNMENT
}

/// Writes a GGUF file: construct with the full header, then call
/// [`GgufWriter::write_data`] with each tensor's bytes, in order (in as many
/// pieces as convenient), then [`GgufWriter::finish`].
pub struct GgufWriter<W: Write> {
    out: W,
    sizes: Vec<u64>,
    current: usize,
    written_in_current: u64,
    total: u64,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_value(buf: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => buf.push(u8::from(*x)),
        MetaValue::Str(s) => put_str(buf, s),
        MetaValue::Array(a) => {
            let (ty, n) = match a {
                MetaArray::U32(v) => (4u32, v.len()),
                MetaArray::I32(v) => (5, v.len()),
                MetaArray::F32(v) => (6, v.len()),
                MetaArray::Str(v) => (8, v.len()),
            };
            buf.extend_from_slice(&ty.to_le_bytes());
            buf.extend_from_slice(&(n as u64).to_le_bytes());
            match a {
                MetaArray::U32(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::I32(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::F32(v) => v
                    .iter()
                    .for_each(|x| buf.extend_from_slice(&x.to_le_bytes())),
                MetaArray::Str(v) => v.iter().for_each(|s| put_str(buf, s)),
            }
        }
    }
}

/// Serializes the header (through the padding before the data section).
///
/// # Errors
/// `InvalidInput` for duplicate keys or tensor names, names of 64 bytes or
/// more, empty arrays, or a tensor whose row length is not a whole number of
/// blocks of its type.
pub fn encode_header(
    kvs: &[(String, MetaValue)],
    tensors: &[TensorInfo],
) -> io::Result<(Vec<u8>, Vec<u64>)> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let mut seen = std::collections::BTreeSet::new();
    let mut buf = Vec::new();
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    buf.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    buf.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        if k.is_empty() || !seen.insert(k.as_str()) {
            return Err(invalid(format!("empty or duplicate GGUF key `{k}`")));
        }
        if let MetaValue::Array(a) = v {
            let empty = match a {
                MetaArray::U32(v) => v.is_empty(),
                MetaArray::I32(v) => v.is_empty(),
                MetaArray::F32(v) => v.is_empty(),
                MetaArray::Str(v) => v.is_empty(),
            };
            if empty {
                return Err(invalid(format!("GGUF key `{k}` has an empty array")));
            }
        }
        put_str(&mut buf, k);
        buf.extend_from_slice(&v.type_id().to_le_bytes());
        put_value(&mut buf, v);
    }
    let mut names = std::collections::BTreeSet::new();
    let mut sizes = Vec::with_capacity(tensors.len());
    let mut offset = 0u64;
    for t in tensors {
        if t.name.len() >= 64 || !names.insert(t.name.as_str()) {
            return Err(invalid(format!(
                "tensor name `{}` is too long or duplicated",
                t.name
            )));
        }
        let nbytes = t.nbytes().ok_or_else(|| {
            invalid(format!(
                "tensor `{}`: row of {:?} is not a whole number of {} blocks",
                t.name, t.shape, t.ty
            ))
        })?;
        put_str(&mut buf, &t.name);
        buf.extend_from_slice(&(t.shape.len().max(1) as u32).to_le_bytes());
        if t.shape.is_empty() {
            buf.extend_from_slice(&1u64.to_le_bytes());
        }
        for &d in t.shape.iter().rev() {
            buf.extend_from_slice(&(d as u64).to_le_bytes());
        }
        buf.extend_from_slice(&t.ty.id().to_le_bytes());
        buf.extend_from_slice(&offset.to_le_bytes());
        offset += align(nbytes);
        sizes.push(nbytes);
    }
    if !tensors.is_empty() {
        buf.resize(align(buf.len() as u64) as usize, 0);
    }
    Ok((buf, sizes))
}

impl<W: Write> GgufWriter<W> {
    /// Writes the header and prepares to receive tensor data.
    pub fn new(
        mut out: W,
        kvs: &[(String, MetaValue)],
        tensors: &[TensorInfo],
    ) -> io::Result<Self> {
        let (header, sizes) = encode_header(kvs, tensors)?;
        out.write_all(&header)?;
        Ok(Self {
            out,
            sizes,
            current: 0,
            written_in_current: 0,
            total: header.len() as u64,
        })
    }

    /// Appends bytes of the current tensor; moves on to the next tensor (after
    /// padding) once the current one is complete.
    pub fn write_data(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let Some(&size) = self.sizes.get(self.current) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "more tensor data than declared",
                ));
            };
            let take = ((size - self.written_in_current) as usize).min(bytes.len());
            self.out.write_all(&bytes[..take])?;
            self.written_in_current += take as u64;
            self.total += take as u64;
            bytes = &bytes[take..];
            self.finish_tensor_if_complete()?;
        }
        Ok(())
    }

    fn finish_tensor_if_complete(&mut self) -> io::Result<()> {
        while let Some(&size) = self.sizes.get(self.current) {
            if self.written_in_current < size {
                break;
            }
            let pad = (align(size) - size) as usize;
            self.out.write_all(&[0u8; ALIGNMENT as usize][..pad])?;
            self.total += pad as u64;
            self.current += 1;
            self.written_in_current = 0;
        }
        Ok(())
    }

    /// Checks that every declared tensor was written, flushes, and returns the
    /// writer and the number of bytes written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        // Zero-sized tensors at the end need their (empty) completion step.
        self.finish_tensor_if_complete()?;
        if self.current != self.sizes.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "less tensor data than declared",
            ));
        }
        self.out.flush()?;
        Ok((self.out, self.total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_gguf_py_example() {
        // gguf.md §1: a 12-byte F32 and a 68-byte Q8_0 tensor → offsets 0, 32.
        let tensors = vec![
            TensorInfo {
                name: "a".into(),
                shape: vec![3],
                ty: GgmlType::F32,
            },
            TensorInfo {
                name: "b".into(),
                shape: vec![64],
                ty: GgmlType::Q8_0,
            },
        ];
        let kvs = vec![(
            "general.architecture".to_owned(),
            MetaValue::Str("llama".into()),
        )];
        let mut w = GgufWriter::new(Vec::new(), &kvs, &tensors).unwrap();
        w.write_data(&[1u8; 12]).unwrap();
        w.write_data(&[2u8; 60]).unwrap();
        w.write_data(&[2u8; 8]).unwrap();
        let (buf, total) = w.finish().unwrap();
        assert_eq!(buf.len() as u64, total);
        assert_eq!(buf.len() % 32, 0);
        assert_eq!(&buf[..4], b"GGUF");
    }
}
