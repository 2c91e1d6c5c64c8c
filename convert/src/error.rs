//! The crate's error type. Every variant names the file or tensor involved
//! so that the CLI can print one actionable line.

use std::path::PathBuf;

/// Everything that can go wrong while reading a checkpoint or writing a
/// converted one.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Reading or writing a file failed.
    #[error("failed to {op} `{}`", path.display())]
    Io {
        /// What we were doing ("open", "map", "read", "write", …).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the output failed.
    #[error("failed to write the output")]
    Write(#[source] std::io::Error),
    /// A required repository file (config.json, a shard, …) is not in the source.
    #[error("missing file `{0}` in the source repository")]
    MissingFile(String),
    /// A JSON file could not be parsed or lacks a required field.
    #[error("invalid `{file}`: {reason}")]
    InvalidJson {
        /// Repository-relative file name.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A safetensors file is malformed.
    #[error("invalid safetensors file `{file}`: {reason}")]
    InvalidSafetensors {
        /// Repository-relative file name.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The safetensors crate rejected a file our own checks accepted.
    #[error("invalid safetensors file `{file}`")]
    Safetensors {
        /// Repository-relative file name.
        file: String,
        /// The underlying error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// The model's architecture is not one we convert.
    #[error(
        "unsupported architecture `{name}` (supported: {})",
        supported.join(", ")
    )]
    UnsupportedArchitecture {
        /// The checkpoint's `architectures` entry.
        name: String,
        /// The architectures this converter takes.
        supported: &'static [&'static str],
    },
    /// A supported architecture in a variant the converter does not handle.
    #[error("unsupported model: {0}")]
    UnsupportedVariant(String),
    /// A tensor the architecture needs is absent.
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    /// The index names a tensor that its shard does not contain.
    #[error(
        "tensor `{tensor}` is listed in the index for `{file}` but that file does not contain it"
    )]
    IndexMismatch {
        /// Tensor name.
        tensor: String,
        /// Shard named by the index.
        file: String,
    },
    /// Two checkpoint tensors map to the same GGUF tensor.
    #[error("tensors `{first}` and `{second}` both map to `{gguf}`")]
    DuplicateTensor {
        /// The first checkpoint tensor (in name order).
        first: String,
        /// The second one.
        second: String,
        /// The GGUF name both map to.
        gguf: String,
    },
    /// A tensor the converter does not know how to map.
    #[error("unexpected tensor `{0}` (cannot map it to a GGUF name)")]
    UnexpectedTensor(String),
    /// A tensor's shape differs from what config.json implies.
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Tensor name.
        tensor: String,
        /// Shape in the checkpoint.
        actual: Vec<usize>,
        /// Shape implied by the config.
        expected: Vec<usize>,
    },
    /// A tensor element type we cannot read.
    #[error("tensor `{tensor}` has unsupported dtype {dtype} (supported: F32, F16, BF16)")]
    UnsupportedDtype {
        /// Tensor name.
        tensor: String,
        /// The dtype as safetensors spells it.
        dtype: String,
    },
    /// One of GPT-OSS's MXFP4 expert tensors (`*_blocks` codes, `*_scales` exponents) cannot
    /// be repacked: a dtype other than U8, blocks not of 16 bytes, scales that do not pair
    /// one to one with the blocks, or the other tensor of the pair missing.
    #[error("invalid MXFP4 tensor `{tensor}`: {reason}")]
    InvalidMxfp4 {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor contains NaN or infinity.
    #[error("tensor `{tensor}` contains a non-finite value at element {index}")]
    NonFinite {
        /// Tensor name.
        tensor: String,
        /// Flat element index of the first offender.
        index: usize,
    },
    /// The tokenizer files are unusable.
    #[error("invalid tokenizer: {0}")]
    Tokenizer(String),
    /// The type cannot be made for this model byte for byte as llama.cpp makes it.
    #[error("type `{ty}` is not available for this model: {reason} (available: {available})")]
    TypeUnavailable {
        /// The requested `--type`.
        ty: String,
        /// Why.
        reason: &'static str,
        /// The types that are.
        available: String,
    },
    /// The type needs an importance matrix, as llama-quantize requires.
    #[error("type `{0}` needs an importance matrix (llama-quantize refuses it without one)")]
    NeedsImatrix(String),
    /// The importance matrix is unreadable or does not fit the model.
    #[error(transparent)]
    Imatrix(#[from] crate::imatrix::ImatrixError),
    /// An unknown `--type` / `--dtype` spelling.
    #[error("unknown type `{0}`")]
    UnknownType(String),
    /// Building the rayon pool failed.
    #[error("failed to build the thread pool")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),
    /// The caller's cancel flag was raised; the output is incomplete.
    #[error("the conversion was cancelled")]
    Cancelled,
}

impl ConvertError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json(file: &str, reason: impl Into<String>) -> Self {
        Self::InvalidJson {
            file: file.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;
