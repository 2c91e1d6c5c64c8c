//! `larder convert --to safetensors --dtype …`: rewrites a checkpoint's
//! floating-point tensors in another dtype, as safetensors shards plus
//! `model.safetensors.index.json`, and copies every other repository file
//! (config.json gets its `torch_dtype` updated).
//!
//! Headers are computed up front, so each shard is written in one pass while
//! tensors are converted a chunk at a time (in parallel) from the mmap.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::error::{ConvertError, Result};
use crate::output::OutputFile;
use crate::quant::float::{f32_to_bf16_bits, quantize_row_f16, quantize_row_f32};
use crate::safetensors::{Checkpoint, StDtype};
use crate::{Cancel, Progress, SourceFiles, check_cancel};

/// Target element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// binary16
    F16,
    /// bfloat16
    Bf16,
    /// binary32
    F32,
}

impl Dtype {
    fn st(self) -> StDtype {
        match self {
            Self::F16 => StDtype::F16,
            Self::Bf16 => StDtype::Bf16,
            Self::F32 => StDtype::F32,
        }
    }

    /// transformers' `torch_dtype` spelling.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F16 => "float16",
            Self::Bf16 => "bfloat16",
            Self::F32 => "float32",
        }
    }
}

impl FromStr for Dtype {
    type Err = ConvertError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f16" | "float16" | "fp16" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f32" | "float32" | "fp32" => Ok(Self::F32),
            _ => Err(ConvertError::UnknownType(s.to_owned())),
        }
    }
}

/// Options of [`convert_dtype_with`].
#[derive(Clone, Copy)]
pub struct DtypeOptions<'a> {
    /// Start a new shard once one would exceed this many bytes (default 5 GB,
    /// transformers' default `max_shard_size`).
    pub max_shard_bytes: u64,
    /// Progress callback over tensor bytes written.
    pub progress: Option<Progress<'a>>,
    /// Cancel flag.
    pub cancel: Option<Cancel<'a>>,
}

impl Default for DtypeOptions<'_> {
    fn default() -> Self {
        Self {
            max_shard_bytes: 5_000_000_000,
            progress: None,
            cancel: None,
        }
    }
}

/// What [`convert_dtype`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtypeReport {
    /// Number of tensors written.
    pub tensors: usize,
    /// Safetensors files written (repository-relative), index excluded.
    pub shards: Vec<String>,
    /// The sha256 (hex) and size of each file in `shards`, computed as it was written.
    pub digests: BTreeMap<String, (String, u64)>,
    /// Other files copied (repository-relative).
    pub copied: Vec<String>,
    /// Total bytes of all safetensors files.
    pub bytes_written: u64,
    /// Non-fatal issues (values that overflowed to ±inf in F16).
    pub warnings: Vec<String>,
}

/// [`convert_dtype_with`] with default options.
pub fn convert_dtype(src: &SourceFiles, dtype: Dtype, out_dir: &Path) -> Result<DtypeReport> {
    convert_dtype_with(src, dtype, out_dir, &DtypeOptions::default())
}

struct Entry<'a> {
    name: &'a str,
    out_dtype: StDtype,
    numel: usize,
    bytes: u64,
}

/// Converts every F32/F16/BF16 tensor to `dtype` (others are copied as they
/// are) into `out_dir`, which must exist.
pub fn convert_dtype_with(
    src: &SourceFiles,
    dtype: Dtype,
    out_dir: &Path,
    opts: &DtypeOptions<'_>,
) -> Result<DtypeReport> {
    let ck = Checkpoint::open(src)?;
    let mut shards: Vec<Vec<Entry<'_>>> = vec![Vec::new()];
    let mut shard_size = 0u64;
    for (name, t) in ck.tensors() {
        let out_dtype = match t.dtype {
            StDtype::F32 | StDtype::F16 | StDtype::Bf16 => dtype.st(),
            other => other,
        };
        let bytes = (t.numel() * out_dtype.size()) as u64;
        if shard_size > 0 && shard_size + bytes > opts.max_shard_bytes {
            shards.push(Vec::new());
            shard_size = 0;
        }
        shard_size += bytes;
        shards.last_mut().expect("non-empty").push(Entry {
            name,
            out_dtype,
            numel: t.numel(),
            bytes,
        });
    }
    let total: u64 = shards.iter().flatten().map(|e| e.bytes).sum();
    let n = shards.len();
    let file_name = |i: usize| {
        if n == 1 {
            "model.safetensors".to_owned()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", i + 1)
        }
    };
    let mut weight_map = BTreeMap::new();
    let mut report = DtypeReport {
        tensors: 0,
        shards: Vec::new(),
        digests: BTreeMap::new(),
        copied: Vec::new(),
        bytes_written: 0,
        warnings: Vec::new(),
    };
    let mut done = 0u64;
    for (i, entries) in shards.iter().enumerate() {
        let fname = file_name(i);
        let path = out_dir.join(&fname);
        let mut w = OutputFile::create(&path).map_err(|e| ConvertError::io("create", &path, e))?;
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let mut offset = 0u64;
        for e in entries {
            let t = ck.get(e.name).expect("listed");
            header.insert(
                e.name.to_owned(),
                serde_json::json!({"dtype": e.out_dtype.name(), "shape": t.shape, "data_offsets": [offset, offset + e.bytes]}),
            );
            offset += e.bytes;
            weight_map.insert(e.name.to_owned(), fname.clone());
        }
        let mut text =
            serde_json::to_vec(&header).map_err(|e| ConvertError::json(&fname, e.to_string()))?;
        text.resize(text.len().div_ceil(8) * 8, b' ');
        let wr = |e| ConvertError::io("write", &path, e);
        w.write_all(&(text.len() as u64).to_le_bytes())
            .map_err(wr)?;
        w.write_all(&text).map_err(wr)?;
        for e in entries {
            check_cancel(opts.cancel)?;
            let t = ck.get(e.name).expect("listed");
            if e.out_dtype == t.dtype {
                w.write_all(ck.raw(t)).map_err(wr)?;
            } else {
                const CHUNK: usize = 1 << 20;
                let out_size = e.out_dtype.size();
                let mut buf = vec![0u8; CHUNK.min(e.numel) * out_size];
                let overflow = AtomicBool::new(false);
                let mut start = 0;
                while start < e.numel {
                    let len = CHUNK.min(e.numel - start);
                    let out = &mut buf[..len * out_size];
                    out.par_chunks_mut(4096 * out_size)
                        .enumerate()
                        .try_for_each_init(
                            || vec![0.0f32; 4096],
                            |tmp, (k, dst)| -> Result<()> {
                                let m = dst.len() / out_size;
                                ck.read_f32(e.name, t, start + k * 4096, &mut tmp[..m])?;
                                match dtype {
                                    Dtype::F32 => quantize_row_f32(&tmp[..m], dst),
                                    Dtype::F16 => {
                                        if tmp[..m].iter().any(|v| v.abs() >= 65520.0) {
                                            overflow.store(true, Ordering::Relaxed);
                                        }
                                        quantize_row_f16(&tmp[..m], dst);
                                    }
                                    Dtype::Bf16 => {
                                        for (x, d) in tmp[..m].iter().zip(dst.chunks_exact_mut(2)) {
                                            d.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes());
                                        }
                                    }
                                }
                                Ok(())
                            },
                        )?;
                    w.write_all(out).map_err(wr)?;
                    start += len;
                }
                if overflow.load(Ordering::Relaxed) {
                    report.warnings.push(format!(
                        "{}: values beyond ±65504 became ±inf in F16; prefer bf16",
                        e.name
                    ));
                }
            }
            done += e.bytes;
            if let Some(cb) = opts.progress {
                cb(done, total);
            }
            report.tensors += 1;
        }
        let (sha256, size) = w.finish().map_err(wr)?;
        report.bytes_written += size;
        report.digests.insert(fname.clone(), (sha256, size));
        report.shards.push(fname);
    }
    if n > 1 {
        let index =
            serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        let path = out_dir.join("model.safetensors.index.json");
        let text = serde_json::to_vec_pretty(&index)
            .map_err(|e| ConvertError::json("index", e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| ConvertError::io("write", &path, e))?;
    }
    for name in src.names() {
        if name.ends_with(".safetensors") || name == "model.safetensors.index.json" {
            continue;
        }
        let from = src.path(name).expect("listed");
        let to = out_dir.join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ConvertError::io("create", parent, e))?;
        }
        if name == "config.json" {
            let bytes = std::fs::read(from).map_err(|e| ConvertError::io("read", from, e))?;
            let mut cfg: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ConvertError::json(name, e.to_string()))?;
            if let Some(obj) = cfg.as_object_mut() {
                obj.insert("torch_dtype".into(), dtype.torch_name().into());
                if obj.contains_key("dtype") {
                    obj.insert("dtype".into(), dtype.torch_name().into());
                }
            }
            let text = serde_json::to_vec_pretty(&cfg)
                .map_err(|e| ConvertError::json(name, e.to_string()))?;
            std::fs::write(&to, text).map_err(|e| ConvertError::io("write", &to, e))?;
        } else {
            std::fs::copy(from, &to).map_err(|e| ConvertError::io("copy", from, e))?;
        }
        report.copied.push(name.to_owned());
    }
    Ok(report)
}
