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
//! llama.cpp itself is the oracle of the strongest checks, and is not optional
//! either: `.ci/setup` builds libllama and ggml's shared libraries from the
//! same sdist into `.llama-cpp/` (`tests/build_llama_cpp.sh`, about 80 s on 2
//! cores; `LARDER_LLAMA_CPP_DIR` overrides the path), and the tests that use
//! it fail, naming the script, when it is missing. llama.cpp loads, runs and
//! tokenizes our files and its `llama_model_quantize` must reproduce every
//! preset tensor for tensor (`e2e::llama_cpp_loads_converted_files`, about
//! 2 minutes of a debug test build on 2 cores), evaluates each family's
//! logits (`logits`, about 25 s), and its real vocabularies must fingerprint
//! to its pre-tokenizer hashes (`pretok`).

mod common;
mod dtype;
mod e2e;
mod hostile;
mod logits;
mod pretok;
mod quants;
