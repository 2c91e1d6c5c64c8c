//! Conversion of Hugging Face safetensors checkpoints: to GGUF (F32/F16/BF16,
//! the legacy and K-quant types and llama.cpp's mixed presets) and to another
//! floating-point dtype.
//!
//! Pure synchronous code plus rayon; no async, no progress-bar dependency.
//! Entry points: [`convert_to_gguf`] and [`convert_dtype`]. Inputs are given
//! as a [`SourceFiles`] map from repository-relative names to files on disk
//! (blob stores name files by hash, so the two differ).
//!
//! Memory stays near one chunk of the largest tensor: tensors are read
//! through `mmap`, converted a few megabytes of rows at a time in parallel,
//! and streamed to the output, whose GGUF header (with every offset) is
//! written first.
#![deny(missing_docs)]

pub mod arch;
pub mod chkhsh;
pub mod dtype;
pub mod error;
pub mod gguf;
pub mod imatrix;
pub mod output;
pub mod pooling;
pub mod preset;
pub mod quant;
pub mod safetensors;
pub mod tokenizer;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

pub use dtype::{Dtype, DtypeOptions, DtypeReport, convert_dtype, convert_dtype_with};
pub use error::ConvertError;
pub use imatrix::{Imatrix, ImatrixError};
pub use output::OutputFile;
pub use preset::GgufType;
pub use quant::GgmlType;

use arch::{Arch, ModelConfig};
use error::Result;
use gguf::{GgufWriter, MetaValue, TensorInfo};
use safetensors::{Checkpoint, TensorRef};

/// The files of one repository revision: repository-relative path → file.
#[derive(Debug, Clone, Default)]
pub struct SourceFiles {
    files: BTreeMap<String, PathBuf>,
}

impl SourceFiles {
    /// Wraps a map of repository-relative names to filesystem paths.
    pub fn new(files: BTreeMap<String, PathBuf>) -> Self {
        Self { files }
    }

    /// Every regular file under `dir`, named relative to it (`/`-separated).
    pub fn from_dir(dir: &Path) -> std::io::Result<Self> {
        fn walk(
            base: &Path,
            dir: &Path,
            out: &mut BTreeMap<String, PathBuf>,
        ) -> std::io::Result<()> {
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let path = e.path();
                if e.file_type()?.is_dir() {
                    walk(base, &path, out)?;
                } else {
                    let rel = path.strip_prefix(base).expect("under base");
                    let rel = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    out.insert(rel, path);
                }
            }
            Ok(())
        }
        let mut files = BTreeMap::new();
        walk(dir, dir, &mut files)?;
        Ok(Self { files })
    }

    /// The file behind a repository-relative name.
    pub fn path(&self, name: &str) -> Option<&Path> {
        self.files.get(name).map(PathBuf::as_path)
    }

    /// All repository-relative names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self
            .path(name)
            .ok_or_else(|| ConvertError::MissingFile(name.to_owned()))?;
        std::fs::read(path).map_err(|e| ConvertError::io("read", path, e))
    }
}

/// Progress callback: `(bytes done, bytes total)` of tensor data. Called from
/// the converting thread after each chunk; must be cheap and must not block.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Cancel flag: checked before each tensor is written; once it is set the conversion stops
/// with [`ConvertError::Cancelled`], leaving an incomplete output for the caller to remove.
pub type Cancel<'a> = &'a std::sync::atomic::AtomicBool;

pub(crate) fn check_cancel(cancel: Option<Cancel<'_>>) -> Result<()> {
    match cancel {
        Some(flag) if flag.load(std::sync::atomic::Ordering::Relaxed) => {
            Err(ConvertError::Cancelled)
        }
        _ => Ok(()),
    }
}

/// Options of [`convert_to_gguf`].
#[derive(Default, Clone, Copy)]
pub struct GgufOptions<'a> {
    /// `general.name` (e.g. the derived repository name); omitted if `None`.
    pub name: Option<&'a str>,
    /// Worker threads for quantization; `None` uses rayon's global pool.
    pub threads: Option<usize>,
    /// Progress callback.
    pub progress: Option<Progress<'a>>,
    /// Force `tokenizer.ggml.pre` instead of detecting it.
    pub pre_tokenizer: Option<&'a str>,
    /// An importance matrix (`llama-imatrix` output) and the file name to
    /// record in `quantize.imatrix.file`.
    pub imatrix: Option<(&'a Imatrix, &'a str)>,
    /// Cancel flag.
    pub cancel: Option<Cancel<'a>>,
}

impl std::fmt::Debug for GgufOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufOptions")
            .field("name", &self.name)
            .field("threads", &self.threads)
            .field("progress", &self.progress.is_some())
            .field("pre_tokenizer", &self.pre_tokenizer)
            .field("imatrix", &self.imatrix.map(|(m, f)| (m.entries.len(), f)))
            .field("cancel", &self.cancel)
            .finish()
    }
}

/// What [`convert_to_gguf`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufReport {
    /// Number of tensors.
    pub tensors: usize,
    /// Size of the GGUF file.
    pub bytes_written: u64,
    /// `general.file_type`.
    pub file_type: u32,
    /// `general.architecture`.
    pub arch: String,
    /// Tensor count per ggml type name (`"Q4_K"` → 12).
    pub types: BTreeMap<String, usize>,
    /// Non-fatal issues (type fallbacks, unrecognized pre-tokenizer, …).
    pub warnings: Vec<String>,
}

/// Where a GGUF tensor's values come from.
enum Values<'a> {
    /// A checkpoint tensor, optionally with the Llama Q/K row permutation,
    /// or (Gemma's norms) stored as `1 + w`.
    Checkpoint {
        hf: String,
        t: &'a TensorRef,
        permute_heads: Option<usize>,
        shift_norm: bool,
    },
    /// A merged 3-D expert tensor: expert `e`'s rows come from `parts[e]`,
    /// read one expert after the other (`None` until the planning loop has
    /// seen that expert's tensor).
    Experts(Vec<Option<(String, &'a TensorRef)>>),
    /// Computed by the converter (`rope_freqs.weight`).
    Generated(Vec<f32>),
    /// GPT-OSS experts repacked from MXFP4 blocks and scales (see [`arch::gptoss`]): all rows
    /// of each expert, or every other one from `parity`.
    Mxfp4 {
        blocks: (String, &'a TensorRef),
        scales: (String, &'a TensorRef),
        parity: Option<usize>,
    },
    /// Values gathered with strides from one checkpoint tensor (GPT-OSS's interleaved gate/up
    /// halves and input-major experts).
    Gathered {
        hf: String,
        t: &'a TensorRef,
        layout: arch::gptoss::Gather,
    },
}

impl Values<'_> {
    /// The checkpoint tensor the values come from, for duplicate errors.
    fn source(&self) -> Option<&str> {
        match self {
            Values::Checkpoint { hf, .. } | Values::Gathered { hf, .. } => Some(hf),
            Values::Mxfp4 { blocks, .. } => Some(&blocks.0),
            Values::Experts(_) | Values::Generated(_) => None,
        }
    }
}

struct Planned<'a> {
    info: TensorInfo,
    values: Values<'a>,
}

/// Smallest magnitude that rounds to infinity in binary16.
const F16_OVERFLOW: f32 = 65520.0;

/// Bytes of output produced per parallel chunk.
const CHUNK_BYTES: usize = 8 << 20;

/// Converts a checkpoint of a supported family ([`arch::SUPPORTED`]) to GGUF, streaming the file to
/// `out` in a single pass. On error the output is incomplete and should be
/// discarded (write to a part file and rename on success).
pub fn convert_to_gguf<W: Write>(
    src: &SourceFiles,
    ty: GgufType,
    out: &mut W,
    opts: &GgufOptions<'_>,
) -> Result<GgufReport> {
    let pool = match opts.threads {
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(ConvertError::ThreadPool)?,
        ),
        None => None,
    };
    let imatrix = opts.imatrix.map(|(m, _)| m);
    if ty == GgufType::Q2KS && imatrix.is_none() {
        return Err(ConvertError::NeedsImatrix(ty.to_string()));
    }
    let mut cfg = ModelConfig::parse(&src.read("config.json")?)?;
    if cfg.arch == Arch::Qwen3 {
        let readme = match src.path("README.md") {
            Some(_) => Some(String::from_utf8_lossy(&src.read("README.md")?).into_owned()),
            None => None,
        };
        if arch::qwen3::is_reranker(&cfg, readme.as_deref()) {
            return Err(ConvertError::UnsupportedVariant(
                "Qwen3 rerankers (llama.cpp converts them to a ranking model with a yes/no \
                 classifier head, which Larder does not write)"
                    .into(),
            ));
        }
    }
    let ck = Checkpoint::open(src)?;
    let mut warnings = Vec::new();
    if cfg.arch == Arch::Gemma3 {
        arch::gemma::fix_vocab(src, &mut cfg)?;
    }
    let mut skipped_vision = 0usize;

    let mut by_gguf: BTreeMap<String, Planned<'_>> = BTreeMap::new();
    for (name, t) in ck.tensors() {
        if cfg.arch == Arch::GptOss
            && let Some((layer, suffix)) = arch::layer_and_suffix(&cfg, name)
            && let Some(parts) =
                arch::gptoss::expert_tensors(&cfg, layer, name, suffix, t, |n| ck.get(n))?
        {
            for part in parts {
                plan_gpt_oss_expert(&ck, part, &mut by_gguf)?;
            }
            continue;
        }
        let Some(m) = arch::map_tensor(&cfg, name)? else {
            if cfg.arch == Arch::Gemma3 && !name.ends_with("inv_freq") {
                skipped_vision += 1;
            }
            continue;
        };
        let fits = t.shape == m.shape
            || (m.truncate_rows
                && t.shape.len() == m.shape.len()
                && t.shape[0] >= m.shape[0]
                && t.shape[1..] == m.shape[1..]);
        if !fits {
            return Err(ConvertError::ShapeMismatch {
                tensor: name.clone(),
                actual: t.shape.clone(),
                expected: m.shape,
            });
        }
        if let Some(e) = m.expert {
            let n_expert = cfg.n_expert;
            let plan = by_gguf.entry(m.gguf.clone()).or_insert_with(|| {
                let mut shape = vec![n_expert];
                shape.extend_from_slice(&m.shape);
                Planned {
                    info: TensorInfo {
                        name: m.gguf.clone(),
                        shape,
                        ty: GgmlType::F32,
                    },
                    values: Values::Experts(vec![None; n_expert]),
                }
            });
            let Values::Experts(parts) = &mut plan.values else {
                unreachable!("expert and plain tensors have distinct GGUF names")
            };
            if let Some((first, _)) = &parts[e] {
                return Err(ConvertError::DuplicateTensor {
                    first: first.clone(),
                    second: name.clone(),
                    gguf: m.gguf,
                });
            }
            parts[e] = Some((name.clone(), t));
            continue;
        }
        let info = TensorInfo {
            name: m.gguf.clone(),
            shape: m.shape,
            ty: GgmlType::F32,
        };
        let values = Values::Checkpoint {
            hf: name.clone(),
            t,
            permute_heads: m.permute_heads,
            shift_norm: m.shift_norm,
        };
        if let Some(first) = by_gguf.get(&m.gguf).and_then(|p| p.values.source()) {
            return Err(ConvertError::DuplicateTensor {
                first: first.to_owned(),
                second: name.clone(),
                gguf: m.gguf,
            });
        }
        by_gguf.insert(m.gguf, Planned { info, values });
    }
    if skipped_vision > 0 {
        warnings.push(format!(
            "skipped {skipped_vision} vision-tower and projector tensors (text-only GGUF)"
        ));
    }
    // Sentence-transformers pooling marks an embedding model (Qwen2/Qwen3 only,
    // as llama.cpp's converter reads it).
    let pooling = match cfg.arch {
        Arch::Qwen2 | Arch::Qwen3 => pooling::pooling_type(src)?,
        _ => None,
    };
    let prefix = if ck.tensors().keys().any(|n| n.starts_with("model.")) {
        "model."
    } else {
        ""
    };
    let need_output = !cfg.tie_embeddings && pooling.is_none();
    for (g, hf) in arch::required_tensors(&cfg, prefix, need_output) {
        let present = match g.split_once('#') {
            Some((g, e)) => match by_gguf.get(g).map(|p| &p.values) {
                Some(Values::Experts(parts)) => {
                    e.parse::<usize>().is_ok_and(|e| parts[e].is_some())
                }
                _ => false,
            },
            None => by_gguf.contains_key(&g),
        };
        if !present {
            return Err(ConvertError::MissingTensor(hf));
        }
    }
    if cfg.arch == Arch::Llama
        && let Some(freqs) = arch::llama::rope_freqs(&cfg)
    {
        let info = TensorInfo {
            name: "rope_freqs.weight".into(),
            shape: vec![freqs.len()],
            ty: GgmlType::F32,
        };
        by_gguf.insert(
            info.name.clone(),
            Planned {
                info,
                values: Values::Generated(freqs),
            },
        );
    }
    if cfg.arch == Arch::Phi3
        && let Some((_, long, short)) = arch::phi3::params(&cfg)?.longrope
    {
        for (name, v) in [
            ("rope_factors_long.weight", long),
            ("rope_factors_short.weight", short),
        ] {
            let info = TensorInfo {
                name: name.into(),
                shape: vec![v.len()],
                ty: GgmlType::F32,
            };
            by_gguf.insert(
                info.name.clone(),
                Planned {
                    info,
                    values: Values::Generated(v),
                },
            );
        }
    }
    let mix = preset::MixContext {
        n_layer: cfg.n_layer,
        n_gqa: cfg.n_gqa(),
        has_output: by_gguf.contains_key("output.weight"),
        is_70b: cfg.arch == Arch::Llama && cfg.n_layer == 80,
        n_expert: cfg.n_expert,
        has_imatrix: imatrix.is_some(),
    };
    let mut plan: Vec<Planned<'_>> = by_gguf.into_values().collect();
    plan.sort_by_key(|p| arch::tensor_order_key(&p.info.name));
    // MXFP4 experts are copied as they are, whatever the output type. Of the llama-quantize
    // presets, only one that keeps them MXFP4 can match: llama-quantize refuses to requantize
    // them ("requantizing from type mxfp4 is disabled"), and copies a tensor whose type it keeps.
    let keeps_mxfp4 = |t: GgufType| {
        !t.is_quantize_preset()
            || plan
                .iter()
                .filter(|p| matches!(p.values, Values::Mxfp4 { .. }))
                .all(|p| {
                    preset::choose_type(t, &p.info.name, &p.info.shape, &mix).0 == GgmlType::Mxfp4
                })
    };
    if !keeps_mxfp4(ty) {
        return Err(ConvertError::TypeUnavailable {
            ty: ty.to_string(),
            reason: "its experts are MXFP4, which llama-quantize refuses to requantize; \
                     they are kept as MXFP4 and the other tensors take the type",
            available: GgufType::ALL
                .into_iter()
                .filter(|&t| keeps_mxfp4(t))
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut types = BTreeMap::new();
    for p in &mut plan {
        let (t, warning) = match p.values {
            // Repacked as they are, whatever the output type.
            Values::Mxfp4 { .. } => (GgmlType::Mxfp4, None),
            _ => preset::choose_type(ty, &p.info.name, &p.info.shape, &mix),
        };
        p.info.ty = t;
        warnings.extend(warning);
        *types.entry(t.name().to_owned()).or_insert(0) += 1;
    }

    if let Some(m) = imatrix {
        // Every entry must name a matrix of this model and fit it (columns × experts).
        let sizes: BTreeMap<String, usize> = plan
            .iter()
            .filter(|p| p.info.shape.len() >= 2)
            .map(|p| {
                let s = &p.info.shape;
                let n_mat = if s.len() == 3 { s[0] } else { 1 };
                (p.info.name.clone(), s[s.len() - 1] * n_mat)
            })
            .collect();
        m.check_against(&sizes)?;
        if ty == GgufType::Q2KS
            && let Some(p) = plan.iter().find(|p| {
                p.info.ty == GgmlType::Q2K
                    && !matches!(p.info.name.as_str(), "token_embd.weight" | "output.weight")
                    && !m.entries.contains_key(&p.info.name)
            })
        {
            return Err(ImatrixError::Missing(p.info.name.clone()).into());
        }
    }
    let tok = tokenizer::tokenizer_metadata(src, &cfg, opts.pre_tokenizer)?;
    warnings.extend(tok.warnings);
    let mut kv: Vec<(String, MetaValue)> = vec![
        (
            "general.architecture".into(),
            MetaValue::Str(cfg.arch.name().into()),
        ),
        ("general.type".into(), MetaValue::Str("model".into())),
    ];
    if let Some(n) = opts.name {
        kv.push(("general.name".into(), MetaValue::Str(n.to_owned())));
    }
    kv.extend(cfg.metadata());
    // llama.cpp's converter labels a float conversion of an MXFP4 checkpoint MXFP4_MOE.
    let file_type = if cfg.arch == Arch::GptOss
        && arch::gptoss::declares_mxfp4(&cfg)
        && matches!(ty, GgufType::F32 | GgufType::F16 | GgufType::Bf16)
    {
        GgufType::Mxfp4Moe.file_type()
    } else {
        ty.file_type()
    };
    kv.push(("general.file_type".into(), MetaValue::U32(file_type)));
    if let Some(p) = pooling {
        kv.push((
            format!("{}.pooling_type", cfg.arch.name()),
            MetaValue::U32(p),
        ));
    }
    kv.push(("general.quantization_version".into(), MetaValue::U32(2)));
    if let Some((m, file)) = opts.imatrix {
        // As llama-quantize records its --imatrix (strings cut to 127 bytes).
        let cut = |s: &str| {
            let mut end = s.len().min(127);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        };
        kv.push(("quantize.imatrix.file".into(), MetaValue::Str(cut(file))));
        if let Some(d) = m.datasets.first() {
            kv.push(("quantize.imatrix.dataset".into(), MetaValue::Str(cut(d))));
        }
        kv.push((
            "quantize.imatrix.entries_count".into(),
            MetaValue::U32(m.entries.len() as u32),
        ));
        if m.chunk_count > 0 {
            kv.push((
                "quantize.imatrix.chunks_count".into(),
                MetaValue::U32(m.chunk_count),
            ));
        }
    }
    kv.extend(tok.kv);

    let infos: Vec<TensorInfo> = plan.iter().map(|p| p.info.clone()).collect();
    let total: u64 = infos.iter().map(|i| i.nbytes().unwrap_or(0)).sum();
    let mut writer = GgufWriter::new(&mut *out, &kv, &infos).map_err(ConvertError::Write)?;
    let mut done = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    for p in &plan {
        check_cancel(opts.cancel)?;
        let s = &p.info.shape;
        let qw = match imatrix {
            Some(m) if p.info.ty.is_quantized() && s.len() >= 2 => {
                let n_mat = if s.len() == 3 { s[0] } else { 1 };
                m.weights(&p.info.name, s[s.len() - 1] * n_mat)
            }
            _ => None,
        };
        write_tensor(
            &ck,
            p,
            qw,
            pool.as_ref(),
            &mut writer,
            &mut buf,
            &mut warnings,
            &mut |n| {
                done += n;
                if let Some(cb) = opts.progress {
                    cb(done, total);
                }
            },
        )?;
    }
    let (_, bytes_written) = writer.finish().map_err(ConvertError::Write)?;
    tracing::info!(
        arch = cfg.arch.name(),
        tensors = plan.len(),
        bytes_written,
        "converted to GGUF"
    );
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(GgufReport {
        tensors: plan.len(),
        bytes_written,
        file_type,
        arch: cfg.arch.name().to_owned(),
        types,
        warnings,
    })
}

/// Gemma's `1 + w`, computed as llama.cpp's converter does it in torch: an
/// F16 checkpoint's tensor stays F16 (the sum is rounded to F16), anything
/// else is first widened to F32.
fn shift_norm_weights(v: &mut [f32], dtype: safetensors::StDtype) {
    for x in v {
        *x += 1.0;
        if dtype == safetensors::StDtype::F16 {
            *x = half::f16::from_f32(*x).to_f32();
        }
    }
}

/// Writes a merged `[n_expert, rows, cols]` tensor, streaming each expert's
/// rows from its own checkpoint tensor and releasing its pages once done.
#[allow(clippy::too_many_arguments)]
fn write_experts<W: Write>(
    ck: &Checkpoint,
    p: &Planned<'_>,
    parts: &[Option<(String, &TensorRef)>],
    qw: Option<&[f32]>,
    pool: Option<&rayon::ThreadPool>,
    writer: &mut GgufWriter<W>,
    buf: &mut Vec<u8>,
    warnings: &mut Vec<String>,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let ty = p.info.ty;
    let shape = &p.info.shape;
    let cols = shape[2];
    let rows_per_expert = shape[1];
    let rows = shape[0] * rows_per_expert;
    let row_bytes = ty
        .row_size(cols)
        .expect("types were chosen so rows divide into blocks");
    let parts: Vec<(&str, &TensorRef)> = parts
        .iter()
        .map(|o| {
            let (hf, t) = o.as_ref().expect("checked complete before writing");
            (hf.as_str(), *t)
        })
        .collect();
    let mut released = 0;
    let overflow = AtomicBool::new(false);
    write_rows(
        rows,
        cols,
        row_bytes,
        pool,
        writer,
        buf,
        progress,
        |r, tmp, dst| {
            let e = r / rows_per_expert;
            let (hf, t) = parts[e];
            ck.read_f32(hf, t, (r % rows_per_expert) * cols, tmp)?;
            quantize_expert_row(ty, tmp, dst, qw, e, &overflow);
            Ok(())
        },
        |done| {
            while released < parts.len() && (released + 1) * rows_per_expert <= done {
                ck.release(parts[released].1);
                released += 1;
            }
        },
    )?;
    warn_f16_overflow(&p.info.name, &overflow, warnings);
    Ok(())
}

/// Adds one of GPT-OSS's expert tensors to the plan.
fn plan_gpt_oss_expert<'a>(
    ck: &'a Checkpoint,
    part: arch::gptoss::ExpertTensor,
    by_gguf: &mut BTreeMap<String, Planned<'a>>,
) -> Result<()> {
    use arch::gptoss::ExpertSource;
    let tensor = |name: &str| {
        ck.get(name)
            .map(|t| (name.to_owned(), t))
            .ok_or_else(|| ConvertError::MissingTensor(name.to_owned()))
    };
    let values = match &part.source {
        ExpertSource::Mxfp4 {
            blocks,
            scales,
            parity,
        } => Values::Mxfp4 {
            blocks: tensor(blocks)?,
            scales: tensor(scales)?,
            parity: *parity,
        },
        ExpertSource::Gathered { hf, layout } => Values::Gathered {
            hf: hf.clone(),
            t: tensor(hf)?.1,
            layout: *layout,
        },
    };
    if let Some(first) = by_gguf.get(&part.gguf).and_then(|p| p.values.source()) {
        return Err(ConvertError::DuplicateTensor {
            first: first.to_owned(),
            second: values.source().unwrap_or_default().to_owned(),
            gguf: part.gguf,
        });
    }
    let info = TensorInfo {
        name: part.gguf.clone(),
        shape: part.shape,
        ty: GgmlType::F32,
    };
    by_gguf.insert(part.gguf, Planned { info, values });
    Ok(())
}

/// The MXFP4 checkpoint tensors of one GGUF expert tensor (see [`Values::Mxfp4`]).
struct Mxfp4Source<'a> {
    blocks: (&'a str, &'a TensorRef),
    scales: (&'a str, &'a TensorRef),
    parity: Option<usize>,
}

/// Writes a `[n_expert, rows, cols]` MXFP4 tensor by repacking the checkpoint's blocks (no
/// requantization). An exponent byte of 0xFF (E8M0's NaN) is refused as a non-finite value.
fn write_mxfp4<W: Write>(
    ck: &Checkpoint,
    p: &Planned<'_>,
    src: &Mxfp4Source<'_>,
    pool: Option<&rayon::ThreadPool>,
    writer: &mut GgufWriter<W>,
    buf: &mut Vec<u8>,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    use quant::mxfp4::{BLOCK, QK, repack_hf_block};
    let (rows_per_expert, cols) = (p.info.shape[1], p.info.shape[2]);
    let rows = p.info.shape[0] * rows_per_expert;
    let nb = cols / QK;
    let src_rows_per_expert = rows_per_expert * if src.parity.is_some() { 2 } else { 1 };
    let (codes, exps) = (ck.raw(src.blocks.1), ck.raw(src.scales.1));
    write_rows(
        rows,
        cols,
        nb * BLOCK,
        pool,
        writer,
        buf,
        progress,
        |r, _, dst| {
            let (e, i) = (r / rows_per_expert, r % rows_per_expert);
            let row = e * src_rows_per_expert + src.parity.map_or(i, |p| 2 * i + p);
            let scales = &exps[row * nb..][..nb];
            if let Some(b) = scales.iter().position(|&s| s == 0xff) {
                return Err(ConvertError::NonFinite {
                    tensor: src.scales.0.to_owned(),
                    index: row * nb + b,
                });
            }
            let row_codes = &codes[row * nb * QK / 2..][..nb * QK / 2];
            for ((out, &scale), block) in dst
                .chunks_exact_mut(BLOCK)
                .zip(scales)
                .zip(row_codes.chunks_exact(QK / 2))
            {
                repack_hf_block(scale, block, out);
            }
            Ok(())
        },
        |_| {},
    )?;
    ck.release(src.blocks.1);
    ck.release(src.scales.1);
    Ok(())
}

/// Writes a tensor whose values are gathered from one checkpoint tensor by `layout` (see
/// [`Values::Gathered`]), with per-expert importance weights for a 3-D one.
#[allow(clippy::too_many_arguments)]
fn write_gathered<W: Write>(
    ck: &Checkpoint,
    p: &Planned<'_>,
    (hf, t, layout): (&str, &TensorRef, arch::gptoss::Gather),
    qw: Option<&[f32]>,
    pool: Option<&rayon::ThreadPool>,
    writer: &mut GgufWriter<W>,
    buf: &mut Vec<u8>,
    warnings: &mut Vec<String>,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let ty = p.info.ty;
    let shape = &p.info.shape;
    let cols = shape[shape.len() - 1];
    let rows: usize = shape[..shape.len() - 1].iter().product();
    let rows_per_expert = if shape.len() == 3 { shape[1] } else { rows };
    let row_bytes = ty
        .row_size(cols)
        .expect("types were chosen so rows divide into blocks");
    let overflow = AtomicBool::new(false);
    write_rows(
        rows,
        cols,
        row_bytes,
        pool,
        writer,
        buf,
        progress,
        |r, tmp, dst| {
            ck.read_f32_strided(hf, t, layout.row_start(r), layout.col_stride, tmp)?;
            quantize_expert_row(ty, tmp, dst, qw, r / rows_per_expert, &overflow);
            Ok(())
        },
        |_| {},
    )?;
    ck.release(t);
    warn_f16_overflow(&p.info.name, &overflow, warnings);
    Ok(())
}

/// Quantizes `row` of expert `e` into `dst` with that expert's slice of the importance weights
/// `qw` (one per column per expert), noting in `overflow` values F16 cannot hold.
fn quantize_expert_row(
    ty: GgmlType,
    row: &[f32],
    dst: &mut [u8],
    qw: Option<&[f32]>,
    e: usize,
    overflow: &AtomicBool,
) {
    note_f16_overflow(ty, row, overflow);
    let cols = row.len();
    ty.quantize_row_weighted(row, dst, qw.map(|w| &w[e * cols..(e + 1) * cols]));
}

/// Records in `flag` that a row about to be stored as F16 has a value F16 cannot hold.
fn note_f16_overflow(ty: GgmlType, row: &[f32], flag: &AtomicBool) {
    if ty == GgmlType::F16 && row.iter().any(|v| v.abs() >= F16_OVERFLOW) {
        flag.store(true, Ordering::Relaxed);
    }
}

/// The warning for a tensor whose F16 copy has infinities (see [`note_f16_overflow`]).
fn warn_f16_overflow(tensor: &str, flag: &AtomicBool, warnings: &mut Vec<String>) {
    if flag.load(Ordering::Relaxed) {
        warnings.push(format!(
            "{tensor}: values beyond ±65504 became ±inf in F16; prefer bf16 or f32 for this model"
        ));
    }
}

/// Quantizes and writes `rows` rows of `cols` values (`row_bytes` each once quantized), a chunk
/// of rows at a time: `fill_row(r, scratch, dst)` produces row `r` into `dst`, rows of a chunk
/// in parallel (on `pool` when given); each chunk is then written and reported, and
/// `after_chunk` is told how many rows are done (to release source pages).
#[allow(clippy::too_many_arguments)]
fn write_rows<W: Write>(
    rows: usize,
    cols: usize,
    row_bytes: usize,
    pool: Option<&rayon::ThreadPool>,
    writer: &mut GgufWriter<W>,
    buf: &mut Vec<u8>,
    progress: &mut dyn FnMut(u64),
    fill_row: impl Fn(usize, &mut Vec<f32>, &mut [u8]) -> Result<()> + Sync,
    mut after_chunk: impl FnMut(usize),
) -> Result<()> {
    let rows_per_chunk = (CHUNK_BYTES / row_bytes.max(cols * 4)).max(1);
    let fill_row = &fill_row;
    let mut start = 0;
    while start < rows {
        let n = rows_per_chunk.min(rows - start);
        buf.resize(n * row_bytes, 0);
        let chunk: &mut [u8] = buf;
        let mut job = move || {
            chunk
                .par_chunks_mut(row_bytes)
                .enumerate()
                .try_for_each_init(
                    || vec![0.0f32; cols],
                    |tmp, (k, dst)| fill_row(start + k, tmp, dst),
                )
        };
        match pool {
            Some(pool) => pool.install(job)?,
            None => job()?,
        }
        writer.write_data(buf).map_err(ConvertError::Write)?;
        progress(buf.len() as u64);
        start += n;
        after_chunk(start);
    }
    Ok(())
}

/// Converts, quantizes and writes one tensor, a chunk of rows at a time
/// (with its importance weights `qw`, if any).
#[allow(clippy::too_many_arguments)]
fn write_tensor<W: Write>(
    ck: &Checkpoint,
    p: &Planned<'_>,
    qw: Option<&[f32]>,
    pool: Option<&rayon::ThreadPool>,
    writer: &mut GgufWriter<W>,
    buf: &mut Vec<u8>,
    warnings: &mut Vec<String>,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let ty = p.info.ty;
    let shape = &p.info.shape;
    let cols = *shape.last().unwrap_or(&1);
    let rows: usize = shape.iter().rev().skip(1).product();
    let row_bytes = ty
        .row_size(cols)
        .expect("types were chosen so rows divide into blocks");
    let (hf, t, permute, shift_norm) = match &p.values {
        Values::Generated(v) => {
            buf.resize(row_bytes, 0);
            ty.quantize_row(v, buf);
            writer.write_data(buf).map_err(ConvertError::Write)?;
            progress(row_bytes as u64);
            return Ok(());
        }
        Values::Experts(parts) => {
            return write_experts(ck, p, parts, qw, pool, writer, buf, warnings, progress);
        }
        Values::Mxfp4 {
            blocks,
            scales,
            parity,
        } => {
            let source = Mxfp4Source {
                blocks: (&blocks.0, blocks.1),
                scales: (&scales.0, scales.1),
                parity: *parity,
            };
            return write_mxfp4(ck, p, &source, pool, writer, buf, progress);
        }
        Values::Gathered { hf, t, layout } => {
            let source = (hf.as_str(), *t, *layout);
            return write_gathered(ck, p, source, qw, pool, writer, buf, warnings, progress);
        }
        Values::Checkpoint {
            hf,
            t,
            permute_heads,
            shift_norm,
        } => (hf.as_str(), *t, *permute_heads, *shift_norm),
    };
    if shape.len() == 1 {
        // Small 1-D tensors (norms, biases): permute element-wise if needed.
        let mut v = vec![0.0f32; cols];
        ck.read_f32(hf, t, 0, &mut v)?;
        if let Some(h) = permute {
            let src = v.clone();
            for (r, x) in v.iter_mut().enumerate() {
                *x = src[arch::llama::permuted_source_row(r, cols, h)];
            }
        }
        if shift_norm {
            shift_norm_weights(&mut v, t.dtype);
        }
        buf.resize(row_bytes, 0);
        ty.quantize_row(&v, buf);
        writer.write_data(buf).map_err(ConvertError::Write)?;
        progress(row_bytes as u64);
        return Ok(());
    }
    // Q8_0 from 16-bit checkpoints, the common case, has kernels that read the bytes directly.
    type FusedKernel = fn(&[u8], &mut [u8]) -> bool;
    let fused_q8_0: Option<FusedKernel> = match (ty, t.dtype) {
        (GgmlType::Q8_0, safetensors::StDtype::F16) => Some(quant::quantize_row_q8_0_from_f16),
        (GgmlType::Q8_0, safetensors::StDtype::Bf16) => Some(quant::quantize_row_q8_0_from_bf16),
        _ => None,
    };
    let overflow = AtomicBool::new(false);
    write_rows(
        rows,
        cols,
        row_bytes,
        pool,
        writer,
        buf,
        progress,
        |r, tmp, dst| {
            let src_row = permute.map_or(r, |h| arch::llama::permuted_source_row(r, rows, h));
            if let Some(kernel) = fused_q8_0 {
                let raw = &ck.raw(t)[src_row * cols * 2..][..cols * 2];
                if kernel(raw, dst) {
                    return Ok(());
                }
            }
            ck.read_f32(hf, t, src_row * cols, tmp)?;
            note_f16_overflow(ty, tmp, &overflow);
            ty.quantize_row_weighted(tmp, dst, qw);
            Ok(())
        },
        |_| {},
    )?;
    ck.release(t);
    warn_f16_overflow(&p.info.name, &overflow, warnings);
    Ok(())
}
