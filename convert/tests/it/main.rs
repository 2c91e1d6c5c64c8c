//! Integration tests of larder-convert.
//!
//! The Python-backed tests use the project venv (`.venv`, created by
//! `.ci/run`) or `$LARDER_PYTHON`, and fail loudly when it is missing:
//! gguf-py is the byte-level oracle for F32/F16/BF16/Q8_0/Q4_x/Q5_x and the
//! reader for every end-to-end check.
//!
//! Stronger oracles are opt-in because they need llama.cpp built from source
//! (`tests/py/setup_llama_cpp.sh` prints the first two variables):
//! `LARDER_GGML_QUANTS_LIB` (ggml's `quantize_row_*_ref`, the only byte-level
//! oracle for K-quants), `LARDER_LLAMA_CPP_PYTHON` (llama.cpp loads, runs
//! and tokenizes our files, and `llama_model_quantize` reproduces every preset
//! tensor for tensor) and `LARDER_LLAMA_CPP_SRC` (a llama.cpp source tree,
//! whose real vocabularies must fingerprint to llama.cpp's pre-tokenizer
//! hashes).

mod common;
mod dtype;
mod e2e;
mod hostile;
mod logits;
mod pretok;
mod quants;
