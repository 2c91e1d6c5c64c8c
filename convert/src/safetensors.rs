//! Reading (possibly sharded) safetensors checkpoints through `mmap`.
//!
//! Headers are validated by our own strict parser first ([`parse_header`]:
//! length limits, offsets inside the file, byte sizes matching shapes, no
//! overlaps, all with checked arithmetic) and then by the `safetensors` crate,
//! so that hostile files produce a [`ConvertError`] naming the file and never
//! a panic or an out-of-bounds slice. Tensor data is never copied as a whole:
//! callers pull rows converted to `f32` ([`Checkpoint::read_f32`]).
//!
//! Allocation is bounded by the header, not by what it claims: a length prefix
//! over [`MAX_HEADER_LEN`] or past the end of the file is refused before the
//! header is read, shapes are multiplied with checked arithmetic against the
//! data section's size, and no buffer is sized from a count in the file.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use memmap2::Mmap;
use serde::Deserialize;

use crate::SourceFiles;
use crate::error::{ConvertError, Result};

/// Largest header we accept (the `safetensors` crate's own limit).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StDtype {
    /// binary32
    F32,
    /// binary16
    F16,
    /// bfloat16
    Bf16,
    /// Anything else, kept by name with its element size so that offsets can
    /// still be validated.
    Other(&'static str, usize),
}

impl StDtype {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "F32" => Self::F32,
            "F16" => Self::F16,
            "BF16" => Self::Bf16,
            "F64" => Self::Other("F64", 8),
            "I64" => Self::Other("I64", 8),
            "U64" => Self::Other("U64", 8),
            "I32" => Self::Other("I32", 4),
            "U32" => Self::Other("U32", 4),
            "I16" => Self::Other("I16", 2),
            "U16" => Self::Other("U16", 2),
            "I8" => Self::Other("I8", 1),
            "U8" => Self::Other("U8", 1),
            "BOOL" => Self::Other("BOOL", 1),
            "F8_E4M3" => Self::Other("F8_E4M3", 1),
            "F8_E5M2" => Self::Other("F8_E5M2", 1),
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
            Self::Other(_, n) => n,
        }
    }

    /// The safetensors spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Bf16 => "BF16",
            Self::Other(n, _) => n,
        }
    }
}

/// One tensor entry of a validated header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEntry {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: StDtype,
    /// Shape (row-major, outermost first).
    pub shape: Vec<usize>,
    /// Byte range relative to the start of the data section.
    pub data: std::ops::Range<usize>,
}

/// A validated header.
#[derive(Debug, Clone)]
pub struct Header {
    /// Offset of the data section in the file (`8 + header length`).
    pub data_start: usize,
    /// Entries sorted by data offset.
    pub entries: Vec<HeaderEntry>,
}

#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Parses and validates the header of the safetensors file `bytes` (the whole
/// file). `file` is used in error messages only.
pub fn parse_header(bytes: &[u8], file: &str) -> Result<Header> {
    let bad = |reason: String| ConvertError::InvalidSafetensors {
        file: file.to_owned(),
        reason,
    };
    if bytes.len() < 8 {
        return Err(bad(format!(
            "truncated: {} bytes, shorter than the 8-byte length prefix",
            bytes.len()
        )));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER_LEN {
        return Err(bad(format!(
            "header length {n} exceeds the limit of {MAX_HEADER_LEN} bytes"
        )));
    }
    let file_len = bytes.len() as u64;
    if 8 + n > file_len {
        return Err(bad(format!(
            "header length {n} extends beyond the end of the file ({file_len} bytes)"
        )));
    }
    let data_start = 8 + n as usize;
    let data_len = bytes.len() - data_start;
    let text = std::str::from_utf8(&bytes[8..data_start])
        .map_err(|e| bad(format!("header is not UTF-8: {e}")))?;
    if !text.starts_with('{') {
        return Err(bad("header does not start with `{`".to_owned()));
    }
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(text.trim_end_matches(' '))
        .map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
    let mut entries = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        if name == "__metadata__" {
            continue;
        }
        let e: RawEntry =
            serde_json::from_value(value).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        let dtype = StDtype::parse(&e.dtype)
            .ok_or_else(|| bad(format!("tensor `{name}`: unknown dtype `{}`", e.dtype)))?;
        let (begin, end) = e.data_offsets;
        if begin > end || end > data_len as u64 {
            return Err(bad(format!(
                "tensor `{name}`: data offsets [{begin}, {end}) are outside the {data_len}-byte data section"
            )));
        }
        let mut shape = Vec::with_capacity(e.shape.len());
        let mut bytes_needed = dtype.size() as u64;
        for &d in &e.shape {
            bytes_needed = bytes_needed
                .checked_mul(d)
                .ok_or_else(|| bad(format!("tensor `{name}`: shape {:?} overflows", e.shape)))?;
            shape.push(
                usize::try_from(d)
                    .map_err(|_| bad(format!("tensor `{name}`: dimension {d} too large")))?,
            );
        }
        if bytes_needed != end - begin {
            return Err(bad(format!(
                "tensor `{name}`: shape {:?} of {} needs {bytes_needed} bytes but data offsets span {}",
                e.shape,
                dtype.name(),
                end - begin
            )));
        }
        entries.push(HeaderEntry {
            name,
            dtype,
            shape,
            data: begin as usize..end as usize,
        });
    }
    entries.sort_by_key(|e| (e.data.start, e.data.end));
    for pair in entries.windows(2) {
        if pair[1].data.start < pair[0].data.end {
            return Err(bad(format!(
                "tensors `{}` and `{}` overlap",
                pair[0].name, pair[1].name
            )));
        }
    }
    Ok(Header {
        data_start,
        entries,
    })
}

/// Where a tensor lives.
#[derive(Debug, Clone)]
pub struct TensorRef {
    /// Index into the checkpoint's shards.
    shard: usize,
    /// Element type.
    pub dtype: StDtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Absolute byte range in the shard file.
    range: std::ops::Range<usize>,
}

impl TensorRef {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

struct Shard {
    name: String,
    map: Mmap,
}

/// Alignment (in file offsets) to which [`Checkpoint::release`] widens a range: the largest
/// page-cache folio on x86-64 and aarch64 with 4 KiB pages (a PMD, 2 MiB).
pub const RELEASE_ALIGN: usize = 2 << 20;

/// A memory-mapped, validated checkpoint (one or more shards).
pub struct Checkpoint {
    shards: Vec<Shard>,
    tensors: BTreeMap<String, TensorRef>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field(
                "shards",
                &self.shards.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Maps a file read-only.
fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| ConvertError::io("open", path, e))?;
    // SAFETY: the files are immutable content-addressed blobs that Larder
    // never truncates or rewrites in place; a concurrent external truncation
    // would be a SIGBUS, which is the documented memmap2 caveat.
    unsafe { Mmap::map(&file) }.map_err(|e| ConvertError::io("map", path, e))
}

#[derive(Deserialize)]
struct IndexJson {
    weight_map: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Opens the model weights of `src`: the shards named by
    /// `model.safetensors.index.json` if present, else every top-level
    /// `model*.safetensors` file (sorted).
    pub fn open(src: &SourceFiles) -> Result<Self> {
        const INDEX: &str = "model.safetensors.index.json";
        let index = match src.path(INDEX) {
            Some(path) => {
                let text = std::fs::read(path).map_err(|e| ConvertError::io("read", path, e))?;
                let idx: IndexJson = serde_json::from_slice(&text)
                    .map_err(|e| ConvertError::json(INDEX, e.to_string()))?;
                Some(idx.weight_map)
            }
            None => None,
        };
        let names: Vec<String> = match &index {
            Some(map) => {
                let mut v: Vec<String> = map.values().cloned().collect();
                v.sort();
                v.dedup();
                v
            }
            None => src
                .names()
                .filter(|n| {
                    !n.contains('/') && n.starts_with("model") && n.ends_with(".safetensors")
                })
                .map(str::to_owned)
                .collect(),
        };
        if names.is_empty() {
            return Err(ConvertError::MissingFile("model.safetensors".into()));
        }
        let mut ck = Checkpoint {
            shards: Vec::new(),
            tensors: BTreeMap::new(),
        };
        for name in names {
            let path = src
                .path(&name)
                .ok_or_else(|| ConvertError::MissingFile(name.clone()))?;
            ck.add_shard(name, path)?;
        }
        if let Some(map) = index {
            for (tensor, file) in map {
                let ok = ck
                    .tensors
                    .get(&tensor)
                    .is_some_and(|t| ck.shards[t.shard].name == file);
                if !ok {
                    return Err(ConvertError::IndexMismatch { tensor, file });
                }
            }
        }
        Ok(ck)
    }

    /// Opens a single safetensors file (mostly for tests and tools).
    pub fn open_file(name: &str, path: &Path) -> Result<Self> {
        let mut ck = Checkpoint {
            shards: Vec::new(),
            tensors: BTreeMap::new(),
        };
        ck.add_shard(name.to_owned(), path)?;
        Ok(ck)
    }

    fn add_shard(&mut self, name: String, path: &Path) -> Result<()> {
        let map = map_file(path)?;
        let header = parse_header(&map, &name)?;
        safetensors::SafeTensors::deserialize(&map).map_err(|source| {
            ConvertError::Safetensors {
                file: name.clone(),
                source,
            }
        })?;
        let shard = self.shards.len();
        for e in header.entries {
            let range = header.data_start + e.data.start..header.data_start + e.data.end;
            if self.tensors.contains_key(&e.name) {
                return Err(ConvertError::InvalidSafetensors {
                    file: name,
                    reason: format!("tensor `{}` also appears in another shard", e.name),
                });
            }
            self.tensors.insert(
                e.name,
                TensorRef {
                    shard,
                    dtype: e.dtype,
                    shape: e.shape,
                    range,
                },
            );
        }
        self.shards.push(Shard { name, map });
        Ok(())
    }

    /// All tensors by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorRef> {
        &self.tensors
    }

    /// Looks a tensor up.
    pub fn get(&self, name: &str) -> Option<&TensorRef> {
        self.tensors.get(name)
    }

    /// The raw bytes of a tensor.
    pub fn raw(&self, t: &TensorRef) -> &[u8] {
        &self.shards[t.shard].map[t.range.clone()]
    }

    /// Drops a converted tensor's pages from this process's mapping, so resident memory stays
    /// near one tensor rather than the whole model (the pages stay in the page cache, and a
    /// later read of the tensor simply maps them again).
    ///
    /// The range dropped is widened to [`RELEASE_ALIGN`] boundaries: a fault on a large folio of
    /// the page cache maps the whole folio (Linux 6.x), so reading a tensor also maps pages of
    /// its neighbours in the file. Without the widening those stay mapped until the neighbour
    /// is converted, which for merged experts (one layer's gate, up and down interleaved in the
    /// file) kept a whole layer's experts resident.
    pub fn release(&self, t: &TensorRef) {
        let map = &self.shards[t.shard].map;
        let start = t.range.start - t.range.start % RELEASE_ALIGN;
        let end = t.range.end.next_multiple_of(RELEASE_ALIGN).min(map.len());
        // SAFETY: the mapping is read-only and file-backed, so MADV_DONTNEED only removes this
        // process's page-table entries for the range; the contents are unchanged, and the
        // converter holds no reference into the mapping across this call (it releases between
        // chunks, when no row is being read).
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
    }

    /// Converts elements `[start, start + out.len())` of tensor `name` to f32.
    pub fn read_f32(&self, name: &str, t: &TensorRef, start: usize, out: &mut [f32]) -> Result<()> {
        let size = t.dtype.size();
        let raw = &self.raw(t)[start * size..(start + out.len()) * size];
        match t.dtype {
            StDtype::F32 => crate::quant::float::dequantize_row_f32(raw, out),
            StDtype::F16 => crate::quant::float::dequantize_row_f16(raw, out),
            StDtype::Bf16 => crate::quant::float::dequantize_row_bf16(raw, out),
            StDtype::Other(d, _) => {
                return Err(ConvertError::UnsupportedDtype {
                    tensor: name.to_owned(),
                    dtype: d.to_owned(),
                });
            }
        }
        check_finite(name, start, 1, out)
    }

    /// Converts elements `start + i·stride` (`i` < `out.len()`) of tensor `name` to f32: a
    /// column, or a row of a transposed tensor.
    pub fn read_f32_strided(
        &self,
        name: &str,
        t: &TensorRef,
        start: usize,
        stride: usize,
        out: &mut [f32],
    ) -> Result<()> {
        if stride == 1 {
            return self.read_f32(name, t, start, out);
        }
        let size = t.dtype.size();
        let raw = self.raw(t);
        let elem = |i: usize| &raw[(start + i * stride) * size..][..size];
        let half = |i: usize| {
            let b = elem(i);
            u16::from_le_bytes([b[0], b[1]])
        };
        match t.dtype {
            StDtype::F32 => {
                for (i, o) in out.iter_mut().enumerate() {
                    let b = elem(i);
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            StDtype::F16 => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = crate::quant::f16_to_f32(half(i));
                }
            }
            StDtype::Bf16 => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = f32::from_bits(u32::from(half(i)) << 16);
                }
            }
            StDtype::Other(d, _) => {
                return Err(ConvertError::UnsupportedDtype {
                    tensor: name.to_owned(),
                    dtype: d.to_owned(),
                });
            }
        }
        check_finite(name, start, stride, out)
    }
}

/// Fails naming the first non-finite value of `out`, read from elements `start + i·stride`.
fn check_finite(name: &str, start: usize, stride: usize, out: &[f32]) -> Result<()> {
    // A fold without early exit vectorises; the position is looked for only on failure.
    if !out.iter().fold(true, |ok, v| ok & v.is_finite())
        && let Some(i) = out.iter().position(|v| !v.is_finite())
    {
        return Err(ConvertError::NonFinite {
            tensor: name.to_owned(),
            index: start + i * stride,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.resize(v.len() + data_len, 0);
        v
    }

    #[test]
    fn accepts_valid() {
        let f = file(
            r#"{"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"__metadata__":{"x":"y"}}"#,
            8,
        );
        let h = parse_header(&f, "m").unwrap();
        assert_eq!(h.entries.len(), 1);
        assert_eq!(h.entries[0].shape, vec![2, 2]);
    }

    #[test]
    fn rejects_hostile() {
        let cases: Vec<Vec<u8>> = vec![
            vec![1, 2, 3],
            u64::MAX.to_le_bytes().to_vec(),
            1000u64.to_le_bytes().to_vec(),
            file(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#,
                8,
            ),
            file(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                16,
            ),
            file(
                r#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#,
                8,
            ),
            file(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
                8,
            ),
            file(r#"["#, 0),
        ];
        for c in cases {
            assert!(parse_header(&c, "m").is_err());
        }
    }
}
