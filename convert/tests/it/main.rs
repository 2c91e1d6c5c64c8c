//! Integration tests of larder-convert.
//!
//! The Python-backed tests use the project venv (`.venv`, created by
//! `.ci/run`) or `$LARDER_PYTHON`, and fail loudly when it is missing:
//! gguf-py is the byte-level oracle for F32/F16/BF16/Q8_0/Q4_x/Q5_x and the
//! reader for every end-to-end check.
//!
//! ggml itself is the byte-level oracle for the K-quants, IQ4 and every
//! importance-weighted quantizer, and it is not optional: its base library
//! (`.ggml/libggml-base.so` at the checkout root, built from the
//! llama-cpp-python sdist by `.ci/setup` via `tests/build_ggml.sh` in about
//! 30 s; `LARDER_GGML_QUANTS_LIB` overrides the path) must be there, or the
//! tests that use it fail saying so.
//!
//! Two stronger oracles stay opt-in because they need llama.cpp built in full
//! (about 10 minutes on 2 cores, `tests/py/setup_llama_cpp.sh`):
//! `LARDER_LLAMA_CPP_PYTHON` (llama.cpp loads, runs and tokenizes our files,
//! and `llama_model_quantize` reproduces every preset tensor for tensor) and
//! `LARDER_LLAMA_CPP_SRC` (a llama.cpp source tree, whose real vocabularies
//! must fingerprint to llama.cpp's pre-tokenizer hashes).

mod common;
mod dtype;
mod e2e;
mod hostile;
mod logits;
mod pretok;
mod quants;
