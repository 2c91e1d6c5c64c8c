//! Integration tests of larder-convert. The Python-backed ones use the
//! project venv (`.venv`, created by `.ci/run`) or `$LARDER_PYTHON`, and fail
//! loudly when it is missing.

mod common;
mod dtype;
mod e2e;
mod hostile;
mod quants;
