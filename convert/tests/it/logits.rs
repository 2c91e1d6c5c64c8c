//! Logits: for each family, a tiny random checkpoint converted to F32 and to Q8_0 must give
//! the logits of a reference forward pass over the source weights (`tests/py/logits_check.py`,
//! numpy): cosine ≥ 0.99999 for F32 and ≥ 0.995 for Q8_0, at every position.
//!
//! The reference reads the safetensors with transformers' conventions; the other pass reads
//! only the GGUF, with llama.cpp's (metadata keys, tensor names, rope layout, stored norms,
//! merged experts, fused projections), every tensor dequantized by the `gguf` package. llama.cpp
//! itself (the build `.ci/setup` makes, [`crate::common::llama_cpp_dir`]; the tests fail
//! without it) also evaluates each file and must meet the same bars (GPT-OSS's MXFP4 experts: see
//! [`LLAMA_CPP_MXFP4_BAR`]).
//!
//! Each family also runs the check against deliberately broken readings of its F32 file
//! (q/k rope layout, gate/up or k/v swapped, norms off by one, experts reordered): each must
//! fall below the F32 bar, so a converter making that mistake would fail here.

use std::path::Path;
use std::process::Command;

use larder_convert::{GgufOptions, GgufType, SourceFiles, convert_to_gguf};

use crate::common::{llama_cpp_python, python, script};
use crate::e2e::make_model_with;

const F32_BAR: f64 = 0.99999;
const Q8_0_BAR: f64 = 0.995;
/// llama.cpp multiplies MXFP4 weights by activations it first rounds to Q8_0 (ggml's CPU
/// `vec_dot_type` for MXFP4), so even an F32 file of a GPT-OSS checkpoint is not evaluated
/// exactly there (measured: 0.99995); the numpy pass, which dequantizes the MXFP4 tensors
/// exactly, keeps the F32 bar.
const LLAMA_CPP_MXFP4_BAR: f64 = 0.9999;

/// Runs `logits_check.py` on `gguf` and returns its JSON result.
fn check(model_dir: &Path, gguf: &Path, extra: &[&str]) -> serde_json::Value {
    // llama.cpp evaluates the file as it is; the misreadings are the numpy pass's alone.
    let mut cmd = if extra.is_empty() {
        llama_cpp_python()
    } else {
        Command::new(python())
    };
    cmd.arg(script("logits_check.py"))
        .arg(model_dir)
        .arg(gguf)
        .args(extra);
    if extra.is_empty() {
        cmd.arg("--llama-cpp");
    }
    let out = cmd.output().expect("spawn python");
    assert!(
        out.status.success(),
        "logits_check.py {} {extra:?} failed:\n{}",
        gguf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "logits_check.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn convert(src: &SourceFiles, ty: GgufType, path: &Path) {
    let mut out = std::fs::File::create(path).unwrap();
    convert_to_gguf(src, ty, &mut out, &GgufOptions::default())
        .unwrap_or_else(|e| panic!("{ty}: {e:#?}"));
}

/// Converts one family's checkpoint to F32 and Q8_0, checks both against the reference, and
/// checks that each of `mutations` (see logits_check.py) breaks the F32 match.
fn family(arch: &str, dtype: &str, tokenizer: &str, tied: bool, extra: &[&str], moe: bool) {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model_with(root.path(), arch, dtype, tokenizer, tied, extra);
    let tag = format!("{arch}{}", extra.join(""));
    for (ty, bar) in [(GgufType::F32, F32_BAR), (GgufType::Q8_0, Q8_0_BAR)] {
        let path = root.path().join(format!("{tag}-{ty}.gguf"));
        convert(&src, ty, &path);
        let r = check(&dir, &path, &[]);
        eprintln!("{tag} {ty}: {r}");
        for key in ["numpy", "llama_cpp"] {
            let bar = if key == "llama_cpp" && arch == "gptoss" && !extra.contains(&"--dequantized")
            {
                bar.min(LLAMA_CPP_MXFP4_BAR)
            } else {
                bar
            };
            let cos = r[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{tag} {ty}: no {key} result ({r})"));
            assert!(
                cos >= bar,
                "{tag} {ty}: {key} logits cosine {cos} < {bar} ({r})"
            );
        }
    }
    let f32_path = root.path().join(format!("{tag}-{}.gguf", GgufType::F32));
    let mut mutations = vec!["rope-layout", "gate-up", "kv-swap", "norms"];
    if moe {
        mutations.push("experts");
    }
    if arch == "gptoss" {
        mutations.push("sinks");
    }
    for m in mutations {
        let r = check(&dir, &f32_path, &["--mutate", m]);
        let cos = r["numpy"].as_f64().unwrap();
        eprintln!("{tag} F32 --mutate {m}: {cos}");
        assert!(
            cos < F32_BAR,
            "{tag}: the check does not see a converter that gets `{m}` wrong (cosine {cos})"
        );
    }
}

#[test]
fn llama_logits() {
    family("llama", "bf16", "bpe", false, &[], false);
}

#[test]
fn mistral_logits() {
    family("mistral", "f16", "spm", false, &[], false);
}

#[test]
fn qwen2_logits() {
    family("qwen2", "f32", "bpe", true, &[], false);
}

#[test]
fn qwen3_logits() {
    family("qwen3", "bf16", "bpe", true, &[], false);
}

/// Four layers: sliding-window (even) and global layers, over 24 tokens (window 16).
#[test]
fn gemma2_logits() {
    family("gemma2", "bf16", "spm", true, &["--layers", "4"], false);
}

/// Six layers: five local (window 16, rope base 10000) and one global (1e6).
#[test]
fn gemma3_logits() {
    family("gemma3", "f16", "spm", true, &["--layers", "6"], false);
}

#[test]
fn gemma3_multimodal_logits() {
    family("gemma3", "bf16", "spm", true, &["--multimodal"], false);
}

#[test]
fn phi3_longrope_logits() {
    family("phi3", "f32", "spm", false, &["--longrope"], false);
}

#[test]
fn mixtral_logits() {
    family("mixtral", "bf16", "bpe", false, &[], true);
}

#[test]
fn qwen2moe_logits() {
    family("qwen2moe", "f16", "bpe", false, &[], true);
}

#[test]
fn qwen3moe_logits() {
    family("qwen3moe", "bf16", "bpe", true, &[], true);
}

/// MXFP4 experts (repacked, not requantized), attention sinks, yarn, a sliding window of 8.
#[test]
fn gpt_oss_logits() {
    family("gptoss", "bf16", "bpe", false, &[], true);
}

/// The same experts as transformers' dequantized checkpoints store them (input-major floats).
#[test]
fn gpt_oss_dequantized_logits() {
    family("gptoss", "bf16", "bpe", false, &["--dequantized"], true);
}
