//! Shared helpers: locating and running the Python reference, a tiny PRNG.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter with `gguf`, `numpy`, `tokenizers`, `sentencepiece`.
pub fn python() -> PathBuf {
    let p = env_or_checkout("LARDER_PYTHON", "../.venv/bin/python");
    assert!(
        p.exists(),
        "Python venv not found at {} — run `.ci/run` to create it (or `python3 -m venv .venv && \
         .venv/bin/pip install gguf numpy tokenizers sentencepiece`), or point LARDER_PYTHON at an \
         interpreter that has those packages",
        p.display()
    );
    p
}

/// ggml's base library (`libggml-base.so`, exporting `quantize_row_*_ref` and
/// `ggml_quantize_chunk`): the byte-level oracle for the K-quants, IQ4 and
/// every importance-weighted quantizer. `$LARDER_GGML_QUANTS_LIB`, else
/// `.ggml/libggml-base.so` at the checkout root, which `.ci/setup` builds
/// (`convert/tests/build_ggml.sh`). Panics when it is missing: the oracle is
/// not optional, so a run without it cannot pass.
pub fn ggml_quants_lib() -> PathBuf {
    let p = env_or_checkout("LARDER_GGML_QUANTS_LIB", "../.ggml/libggml-base.so");
    assert!(
        p.is_file(),
        "ggml's quantizer library not found at {} — run `.ci/setup` (or just \
         `convert/tests/build_ggml.sh`, about 30 s) to build it from the llama-cpp-python sdist, \
         or point LARDER_GGML_QUANTS_LIB at a libggml-base.so",
        p.display()
    );
    p
}

/// llama.cpp built by `tests/build_llama_cpp.sh` (libllama and ggml's shared
/// libraries in `lib/`, llama-cpp-python's `llama_cpp` package in `python/`,
/// real vocabularies in `llama.cpp/models/`): `$LARDER_LLAMA_CPP_DIR`, else
/// `.llama-cpp` at the checkout root, which `.ci/setup` builds. Panics when it
/// is missing: llama.cpp is the oracle of the tests that call this, and a run
/// without it cannot pass.
pub fn llama_cpp_dir() -> PathBuf {
    let dir = env_or_checkout("LARDER_LLAMA_CPP_DIR", "../.llama-cpp");
    assert!(
        dir.join("lib/libllama.so").is_file() && dir.join("python/llama_cpp").is_dir(),
        "llama.cpp not found at {} — run `bash .ci/setup` (or just `bash \
         convert/tests/build_llama_cpp.sh`, about 80 s on 2 cores) to build it from the \
         llama-cpp-python sdist, or point LARDER_LLAMA_CPP_DIR at that script's output",
        dir.display()
    );
    dir
}

/// [`python`] set up to `import llama_cpp` from [`llama_cpp_dir`]'s build.
pub fn llama_cpp_python() -> Command {
    let dir = llama_cpp_dir();
    let mut cmd = Command::new(python());
    cmd.env("PYTHONPATH", dir.join("python"))
        .env("LLAMA_CPP_LIB_PATH", dir.join("lib"));
    cmd
}

/// `$var`, else `rel` under this crate's directory.
fn env_or_checkout(var: &str, rel: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
}

/// Path of a script in `tests/py/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

/// Runs a script; panics with its stderr on failure. Returns stdout.
pub fn run_py(name: &str, args: &[&str]) -> String {
    run_py_cmd(name, args, Command::new(python()))
}

/// [`run_py`] with llama.cpp importable ([`llama_cpp_python`]).
pub fn run_py_with_llama_cpp(name: &str, args: &[&str]) -> String {
    run_py_cmd(name, args, llama_cpp_python())
}

/// [`run_py`], with `LARDER_GGML_QUANTS_LIB` set to [`ggml_quants_lib`] for
/// the script (`check_gguf.py` compares against ggml's bytes with it).
pub fn run_py_with_ggml(name: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(python());
    cmd.env("LARDER_GGML_QUANTS_LIB", ggml_quants_lib());
    run_py_cmd(name, args, cmd)
}

fn run_py_cmd(name: &str, args: &[&str], mut cmd: Command) -> String {
    let out = cmd
        .arg(script(name))
        .args(args)
        .output()
        .expect("spawn python");
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// xorshift64* with a Box–Muller normal; deterministic across platforms.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}
