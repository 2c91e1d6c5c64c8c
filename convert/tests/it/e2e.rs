//! End-to-end: tiny Llama / Mistral / Qwen2 / Qwen3 checkpoints (2 shards + index,
//! F32/F16/BF16 sources, trained BPE or SentencePiece tokenizers, padded
//! vocab) converted with every preset and checked by `gguf.GGUFReader`
//! (`tests/py/check_gguf.py`); plus the error paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use larder_convert::{ConvertError, GgufOptions, GgufType, SourceFiles, convert_to_gguf};

use crate::common::{llama_cpp_python, run_py, run_py_with_ggml, run_py_with_llama_cpp};

/// Copies `dir`'s files to hash-like blob names, as the store keeps them.
fn as_blobs(dir: &Path, blobs: &Path) -> SourceFiles {
    std::fs::create_dir_all(blobs).unwrap();
    let files = SourceFiles::from_dir(dir).unwrap();
    let mut map = BTreeMap::new();
    for (i, name) in files.names().enumerate() {
        let blob = blobs.join(format!("{:064x}", 0xb10b_0000 + i));
        std::fs::copy(files.path(name).unwrap(), &blob).unwrap();
        map.insert(name.to_owned(), blob);
    }
    SourceFiles::new(map)
}

fn make_model(
    root: &Path,
    arch: &str,
    dtype: &str,
    tokenizer: &str,
    tied: bool,
) -> (PathBuf, SourceFiles) {
    make_model_with(root, arch, dtype, tokenizer, tied, &[])
}

pub(crate) fn make_model_with(
    root: &Path,
    arch: &str,
    dtype: &str,
    tokenizer: &str,
    tied: bool,
    extra: &[&str],
) -> (PathBuf, SourceFiles) {
    let dir = root.join(format!("{arch}-{dtype}-{tokenizer}{}", extra.join("")));
    let mut args = vec![dir.to_str().unwrap(), arch, dtype, tokenizer];
    if tied {
        args.push("--tied");
    }
    args.extend_from_slice(extra);
    run_py("make_model.py", &args);
    let src = as_blobs(&dir, &root.join("blobs").join(dir.file_name().unwrap()));
    (dir, src)
}

fn convert_and_check(root: &Path, model_dir: &Path, src: &SourceFiles, preset: GgufType) {
    convert_and_check_with(root, model_dir, src, preset, None);
}

fn convert_and_check_with(
    root: &Path,
    model_dir: &Path,
    src: &SourceFiles,
    preset: GgufType,
    imatrix: Option<&Path>,
) {
    let out_path = root.join(format!(
        "{}-{preset}{}.gguf",
        model_dir.file_name().unwrap().to_string_lossy(),
        imatrix.map_or(String::new(), |p| format!(
            "-{}",
            p.file_name().unwrap().to_string_lossy()
        ))
    ));
    let matrix = imatrix.map(|p| larder_convert::Imatrix::load(p).unwrap());
    let matrix_name = imatrix.map(|p| p.file_name().unwrap().to_string_lossy().into_owned());
    let mut out = std::fs::File::create(&out_path).unwrap();
    let last = Mutex::new((0u64, 0u64));
    let progress = |done: u64, total: u64| *last.lock().unwrap() = (done, total);
    let opts = GgufOptions {
        name: Some("tiny"),
        threads: Some(2),
        progress: Some(&progress),
        pre_tokenizer: None,
        imatrix: matrix.as_ref().zip(matrix_name.as_deref()),
        cancel: None,
    };
    let report = convert_to_gguf(src, preset, &mut out, &opts)
        .unwrap_or_else(|e| panic!("{preset}: {e:#?}"));
    drop(out);
    let (done, total) = *last.lock().unwrap();
    assert!(
        done == total && total > 0,
        "{preset}: progress ended at {done}/{total}"
    );
    assert_eq!(
        report.bytes_written,
        std::fs::metadata(&out_path).unwrap().len()
    );
    assert_eq!(report.file_type, preset.file_type());
    assert_eq!(report.types.values().sum::<usize>(), report.tensors);
    let mut args = vec![
        out_path.to_str().unwrap(),
        model_dir.to_str().unwrap(),
        preset.as_str(),
    ];
    if let Some(p) = imatrix {
        args.push(p.to_str().unwrap());
    }
    let summary = run_py_with_ggml("check_gguf.py", &args);
    let v: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(
        v["tensors"].as_u64().unwrap() as usize,
        report.tensors,
        "{preset}"
    );
    for (ty, n) in &report.types {
        assert_eq!(
            v["types"][ty].as_u64(),
            Some(*n as u64),
            "{preset}: {ty} count"
        );
    }
}

#[test]
fn llama_bf16_bpe_untied() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model(root.path(), "llama", "bf16", "bpe", false);
    for preset in [
        GgufType::F32,
        GgufType::Q8_0,
        GgufType::Q4_0,
        GgufType::Q4KM,
        GgufType::Q5KM,
    ] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

#[test]
fn mistral_f16_sentencepiece_head_dim() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model(root.path(), "mistral", "f16", "spm", false);
    for preset in [GgufType::F16, GgufType::Q4KS, GgufType::Q6K, GgufType::Q5_0] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

#[test]
fn qwen2_f32_bpe_tied_biases() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model(root.path(), "qwen2", "f32", "bpe", true);
    for preset in [
        GgufType::Bf16,
        GgufType::Q4_1,
        GgufType::Q5_1,
        GgufType::Q2K,
        GgufType::Q3KM,
        GgufType::Q5KS,
    ] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// Qwen3 as Qwen3-0.6B is shaped: tied embeddings, `head_dim` (64) twice
/// `hidden / heads` (32), so `attn_q` has 512 rows for a hidden size of 256,
/// 4 query heads per KV head (Q2_K's `attn_v` rule), q/k norms of length 64.
#[test]
fn qwen3_bf16_bpe_tied_head_dim() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model(root.path(), "qwen3", "bf16", "bpe", true);
    for preset in [
        GgufType::F16,
        GgufType::Q8_0,
        GgufType::Q4KM,
        GgufType::Q2K,
        GgufType::Q3KM,
        GgufType::Q6K,
    ] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// Qwen3, untied, with yarn rope scaling (as Qwen3's long-context setup)
/// and `attention_bias` (q/k/v biases, which Qwen3 only has when set).
#[test]
fn qwen3_f16_bpe_untied_yarn_bias() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model_with(
        root.path(),
        "qwen3",
        "f16",
        "bpe",
        false,
        &["--yarn", "--bias"],
    );
    for preset in [
        GgufType::F32,
        GgufType::Bf16,
        GgufType::Q4_0,
        GgufType::Q5_0,
        GgufType::Q4KS,
        GgufType::Q5KM,
    ] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// A Qwen3-Embedding-like checkpoint: sentence-transformers files (last-token
/// pooling → `qwen3.pooling_type`), tensors of the bare decoder without the
/// `model.` prefix, and no LM head although the config is untied (as
/// Qwen3-Embedding-8B): the embedding then gets the output's type.
#[test]
fn qwen3_embedding_bare_decoder() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model_with(root.path(), "qwen3", "f32", "bpe", false, &["--embedding"]);
    for preset in [GgufType::Q8_0, GgufType::Q4KM] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

// ---- error paths (pure Rust fixtures, no Python) ----

fn st_file(tensors: &[(&str, &[usize], &[f32])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in *values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    out
}

struct Fixture {
    _dir: tempfile::TempDir,
    files: BTreeMap<String, PathBuf>,
}

/// The tensors of the 1-layer Llama fixture.
fn llama_shapes() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("model.embed_tokens.weight", vec![4, 32]),
        ("lm_head.weight", vec![4, 32]),
        ("model.norm.weight", vec![32]),
        ("model.layers.0.input_layernorm.weight", vec![32]),
        ("model.layers.0.post_attention_layernorm.weight", vec![32]),
        ("model.layers.0.self_attn.q_proj.weight", vec![32, 32]),
        ("model.layers.0.self_attn.k_proj.weight", vec![16, 32]),
        ("model.layers.0.self_attn.v_proj.weight", vec![16, 32]),
        ("model.layers.0.self_attn.o_proj.weight", vec![32, 32]),
        ("model.layers.0.mlp.gate_proj.weight", vec![64, 32]),
        ("model.layers.0.mlp.up_proj.weight", vec![64, 32]),
        ("model.layers.0.mlp.down_proj.weight", vec![32, 64]),
    ]
}

/// The tensors of the 1-layer Qwen3 fixture: hidden 32, 4 heads of 16
/// (not 32 / 4), 2 KV heads, tied embeddings.
fn qwen3_shapes() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("model.embed_tokens.weight", vec![4, 32]),
        ("model.norm.weight", vec![32]),
        ("model.layers.0.input_layernorm.weight", vec![32]),
        ("model.layers.0.post_attention_layernorm.weight", vec![32]),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, 32]),
        ("model.layers.0.self_attn.k_proj.weight", vec![32, 32]),
        ("model.layers.0.self_attn.v_proj.weight", vec![32, 32]),
        ("model.layers.0.self_attn.o_proj.weight", vec![32, 64]),
        ("model.layers.0.self_attn.q_norm.weight", vec![16]),
        ("model.layers.0.self_attn.k_norm.weight", vec![16]),
        ("model.layers.0.mlp.gate_proj.weight", vec![64, 32]),
        ("model.layers.0.mlp.up_proj.weight", vec![64, 32]),
        ("model.layers.0.mlp.down_proj.weight", vec![32, 64]),
    ]
}

impl Fixture {
    /// A 1-layer Llama with hidden 32, vocab 4, plus a tokenizer.json.
    fn new() -> Self {
        let config = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "vocab_size": 4
        });
        Self::build(&config, &llama_shapes())
    }

    /// A 1-layer Qwen3 with hidden 32 and head_dim 16 (`qwen3_shapes`).
    fn qwen3() -> Self {
        let config = serde_json::json!({
            "architectures": ["Qwen3ForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "max_position_embeddings": 128, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000, "vocab_size": 4, "tie_word_embeddings": true,
            "attention_bias": false
        });
        Self::build(&config, &qwen3_shapes())
    }

    /// `config`, a 4-token tokenizer.json and one shard of 0.01s shaped `shapes`.
    fn build(config: &serde_json::Value, shapes: &[(&str, Vec<usize>)]) -> Self {
        let tokenizer = serde_json::json!({
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
            "added_tokens": [{"id": 3, "content": "<s>", "special": true}]
        });
        let mut fx = Fixture {
            _dir: tempfile::tempdir().unwrap(),
            files: BTreeMap::new(),
        };
        fx.put("config.json", &serde_json::to_vec(config).unwrap());
        fx.put("tokenizer.json", &serde_json::to_vec(&tokenizer).unwrap());
        fx.put_shard(shapes);
        fx
    }

    /// Replaces the checkpoint with one shard of 0.01s shaped `shapes`.
    fn put_shard(&mut self, shapes: &[(&str, Vec<usize>)]) {
        let data: Vec<Vec<f32>> = shapes
            .iter()
            .map(|(_, s)| vec![0.01f32; s.iter().product()])
            .collect();
        let tensors: Vec<(&str, &[usize], &[f32])> = shapes
            .iter()
            .zip(&data)
            .map(|((n, s), d)| (*n, s.as_slice(), d.as_slice()))
            .collect();
        self.put("model.safetensors", &st_file(&tensors));
    }

    fn put(&mut self, name: &str, bytes: &[u8]) {
        let path = self
            ._dir
            .path()
            .join(format!("blob-{}", self.files.len() + name.len() * 1000));
        std::fs::write(&path, bytes).unwrap();
        self.files.insert(name.to_owned(), path);
    }

    fn edit_config(&mut self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&self.files["config.json"]).unwrap()).unwrap();
        f(&mut v);
        self.put("config.json", &serde_json::to_vec(&v).unwrap());
    }

    fn convert(&self) -> Result<larder_convert::GgufReport, ConvertError> {
        let mut out = Vec::new();
        convert_to_gguf(
            &SourceFiles::new(self.files.clone()),
            GgufType::Q8_0,
            &mut out,
            &GgufOptions::default(),
        )
    }
}

#[test]
fn fixture_converts() {
    let r = Fixture::new().convert().unwrap();
    assert_eq!(r.tensors, 12);
    assert!(
        r.warnings.iter().any(|w| w.contains("pre-tokenizer")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn unsupported_architecture() {
    let mut fx = Fixture::new();
    fx.edit_config(|c| c["architectures"] = serde_json::json!(["GPT2LMHeadModel"]));
    let e = fx.convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::UnsupportedArchitecture { name: a, .. } if a == "GPT2LMHeadModel"),
        "{e}"
    );
    let msg = e.to_string();
    for name in [
        "Gemma3ForConditionalGeneration",
        "MixtralForCausalLM",
        "Phi3ForCausalLM",
        "GptOssForCausalLM",
    ] {
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn shape_mismatch_names_the_tensor() {
    let mut fx = Fixture::new();
    fx.edit_config(|c| c["intermediate_size"] = 96.into());
    let e = fx.convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::ShapeMismatch { tensor, .. } if tensor.contains("mlp")),
        "{e}"
    );
}

#[test]
fn missing_tensor_and_missing_shard() {
    let mut fx = Fixture::new();
    let z = vec![0.0f32; 128];
    fx.put(
        "model.safetensors",
        &st_file(&[("model.embed_tokens.weight", &[4, 32], &z)]),
    );
    let e = fx.convert().unwrap_err();
    assert!(matches!(&e, ConvertError::MissingTensor(_)), "{e}");

    let mut fx = Fixture::new();
    fx.put(
        "model.safetensors.index.json",
        br#"{"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}}"#,
    );
    let e = fx.convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::MissingFile(f) if f == "model-00002-of-00002.safetensors"),
        "{e}"
    );

    let mut fx = Fixture::new();
    fx.put(
        "model.safetensors.index.json",
        br#"{"weight_map": {"model.extra.weight": "model.safetensors"}}"#,
    );
    let e = fx.convert().unwrap_err();
    assert!(matches!(&e, ConvertError::IndexMismatch { .. }), "{e}");
}

/// The Qwen3 fixture with its shard replaced by `shapes`' tensors.
fn qwen3_with(shapes: &[(&str, Vec<usize>)]) -> Fixture {
    let mut fx = Fixture::qwen3();
    fx.put_shard(shapes);
    fx
}

#[test]
fn qwen3_fixture_converts_with_head_dim() {
    let r = Fixture::qwen3().convert().unwrap();
    assert_eq!(r.arch, "qwen3");
    // 13 checkpoint tensors, tied: no output.weight.
    assert_eq!(r.tensors, 13);
    // The q/k norms stay F32 like the other norms (5 in all).
    assert_eq!(r.types.get("F32"), Some(&5), "{:?}", r.types);
}

#[test]
fn qwen3_missing_q_norm_names_the_tensor() {
    let shapes: Vec<_> = qwen3_shapes()
        .into_iter()
        .filter(|(n, _)| !n.ends_with("q_norm.weight"))
        .collect();
    let e = qwen3_with(&shapes).convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::MissingTensor(n) if n == "model.layers.0.self_attn.q_norm.weight"),
        "{e}"
    );
    assert!(e.to_string().contains("self_attn.q_norm.weight"), "{e}");
}

#[test]
fn qwen3_shapes_follow_head_dim_not_hidden_over_heads() {
    // A q_norm of hidden / heads (8) instead of head_dim (16).
    let mut shapes = qwen3_shapes();
    for (n, s) in &mut shapes {
        if n.ends_with("k_norm.weight") {
            *s = vec![8];
        }
    }
    let e = qwen3_with(&shapes).convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::ShapeMismatch { tensor, actual, expected }
            if tensor == "model.layers.0.self_attn.k_norm.weight" && actual == &[8] && expected == &[16]),
        "{e}"
    );
    // A q_proj sized by hidden (32 rows) instead of heads × head_dim (64).
    let mut shapes = qwen3_shapes();
    for (n, s) in &mut shapes {
        if n.ends_with("q_proj.weight") {
            *s = vec![32, 32];
        }
    }
    let e = qwen3_with(&shapes).convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::ShapeMismatch { tensor, expected, .. }
            if tensor.ends_with("q_proj.weight") && expected == &[64, 32]),
        "{e}"
    );
}

#[test]
fn qwen3_attention_bias_requires_the_biases() {
    let mut fx = Fixture::qwen3();
    fx.edit_config(|c| c["attention_bias"] = true.into());
    let e = fx.convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::MissingTensor(n) if n.ends_with("self_attn.q_proj.bias")),
        "{e}"
    );
}

#[test]
fn q_norm_is_unexpected_outside_qwen3() {
    let mut shapes = llama_shapes();
    shapes.push(("model.layers.0.self_attn.q_norm.weight", vec![16]));
    let mut fx = Fixture::new();
    fx.put_shard(&shapes);
    let e = fx.convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::UnexpectedTensor(n) if n.ends_with("q_norm.weight")),
        "{e}"
    );
}

#[test]
fn qwen3_reranker_is_refused() {
    let mut fx = Fixture::qwen3();
    fx.put(
        "README.md",
        b"---\nlicense: apache-2.0\n---\n\n# Qwen3-Reranker-0.6B\n\nText ranking.\n",
    );
    let e = fx.convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::UnsupportedVariant(m) if m.contains("reranker")),
        "{e}"
    );
    // An ordinary model card converts.
    let mut fx = Fixture::qwen3();
    fx.put("README.md", b"# Qwen3-0.6B\n");
    fx.convert().unwrap();
}

#[test]
fn bare_decoder_names_and_duplicates() {
    // Without the `model.` prefix, a missing tensor is named as the checkpoint spells it.
    let shapes: Vec<_> = qwen3_shapes()
        .into_iter()
        .filter(|(n, _)| !n.ends_with("k_norm.weight"))
        .map(|(n, s)| (n.strip_prefix("model.").unwrap(), s))
        .collect();
    let e = qwen3_with(&shapes).convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::MissingTensor(n) if n == "layers.0.self_attn.k_norm.weight"),
        "{e}"
    );
    // The same tensor with and without the prefix is an error, not a silent pick.
    let mut shapes = qwen3_shapes();
    shapes.push(("norm.weight", vec![32]));
    let e = qwen3_with(&shapes).convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::DuplicateTensor { gguf, .. } if gguf == "output_norm.weight"),
        "{e}"
    );
}

/// A Qwen3-MoE config without experts is refused before any work.
#[test]
fn moe_without_experts_is_refused() {
    let mut fx = Fixture::qwen3();
    fx.edit_config(|c| c["architectures"] = serde_json::json!(["Qwen3MoeForCausalLM"]));
    let e = fx.convert().unwrap_err();
    assert!(e.to_string().contains("num_experts"), "{e}");
}

/// GPT-OSS as released (MXFP4 experts) and dequantized, converted to every type that can be
/// made of it and checked tensor by tensor (`check_gpt_oss.py`: the MXFP4 repack byte for byte
/// and by value, the split gate/up halves, keys, file type). The quantize presets but
/// `mxfp4_moe` (which keeps the MXFP4 experts) are refused for the MXFP4 checkpoint before
/// anything is written, naming the types that work; the dequantized one takes them like any
/// mixture of experts.
#[test]
fn gpt_oss_bf16_bpe() {
    let root = tempfile::tempdir().unwrap();
    let mut sources = Vec::new();
    for extra in [&[][..], &["--dequantized"][..]] {
        let (dir, src) = make_model_with(root.path(), "gptoss", "bf16", "bpe", false, extra);
        for preset in [GgufType::F32, GgufType::F16, GgufType::Bf16, GgufType::Q8_0] {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let path = root.path().join(format!("{name}-{preset}.gguf"));
            let mut out = std::fs::File::create(&path).unwrap();
            let report = convert_to_gguf(&src, preset, &mut out, &GgufOptions::default())
                .unwrap_or_else(|e| panic!("{name} {preset}: {e}"));
            drop(out);
            let args = [
                path.to_str().unwrap(),
                dir.to_str().unwrap(),
                preset.as_str(),
            ];
            let v: serde_json::Value =
                serde_json::from_str(run_py("check_gpt_oss.py", &args).trim()).unwrap();
            assert_eq!(v["tensors"].as_u64(), Some(report.tensors as u64));
            for (ty, n) in &report.types {
                assert_eq!(
                    v["types"][ty].as_u64(),
                    Some(*n as u64),
                    "{name} {preset} {ty}"
                );
            }
            let mxfp4 = report.types.get("MXFP4").copied().unwrap_or(0);
            assert_eq!(mxfp4, if extra.is_empty() { 3 * 2 } else { 0 });
        }
        sources.push(src);
    }
    let mut out = Vec::new();
    let e = convert_to_gguf(
        &sources[0],
        GgufType::Q4KM,
        &mut out,
        &GgufOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, ConvertError::TypeUnavailable { ty, .. } if ty == "q4_k_m"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("(available: f32, f16, bf16, q8_0, mxfp4_moe)"),
        "{e}"
    );
    assert!(out.is_empty());
    let r = convert_to_gguf(
        &sources[1],
        GgufType::Q4KM,
        &mut out,
        &GgufOptions::default(),
    )
    .unwrap();
    assert!(r.types.contains_key("Q4_K"), "{:?}", r.types);
    // MXFP4_MOE from either checkpoint: the 3 expert tensors of each of the 2 layers MXFP4,
    // the other weights Q8_0 (the bytes are llama-quantize's: `llama_cpp_loads_converted_files`).
    for src in &sources {
        out.clear();
        let r =
            convert_to_gguf(src, GgufType::Mxfp4Moe, &mut out, &GgufOptions::default()).unwrap();
        assert_eq!(r.file_type, 38);
        assert_eq!(r.types.get("MXFP4"), Some(&(3 * 2)), "{:?}", r.types);
        assert!(
            r.types
                .keys()
                .all(|t| matches!(t.as_str(), "MXFP4" | "Q8_0" | "F32")),
            "{:?}",
            r.types
        );
    }
}

/// Q2_K_S needs an importance matrix, as in llama-quantize.
#[test]
fn q2_k_s_needs_an_imatrix() {
    let fx = Fixture::qwen3();
    let mut out = Vec::new();
    let e = convert_to_gguf(
        &SourceFiles::new(fx.files.clone()),
        GgufType::Q2KS,
        &mut out,
        &GgufOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, ConvertError::NeedsImatrix(_)), "{e}");
}

/// The fixture's tensors with `up_proj` replaced by `up`.
fn fixture_with_up_proj(up: Vec<f32>) -> Fixture {
    let mut fx = Fixture::new();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (n, s) in [
        ("model.embed_tokens.weight", vec![4, 32]),
        ("lm_head.weight", vec![4, 32]),
        ("model.norm.weight", vec![32]),
        ("model.layers.0.input_layernorm.weight", vec![32]),
        ("model.layers.0.post_attention_layernorm.weight", vec![32]),
        ("model.layers.0.self_attn.q_proj.weight", vec![32, 32]),
        ("model.layers.0.self_attn.k_proj.weight", vec![16, 32]),
        ("model.layers.0.self_attn.v_proj.weight", vec![16, 32]),
        ("model.layers.0.self_attn.o_proj.weight", vec![32, 32]),
        ("model.layers.0.mlp.gate_proj.weight", vec![64, 32]),
        ("model.layers.0.mlp.down_proj.weight", vec![32, 64]),
    ] {
        let len = s.iter().product();
        tensors.push((n.to_owned(), s, vec![0.01; len]));
    }
    tensors.push(("model.layers.0.mlp.up_proj.weight".into(), vec![64, 32], up));
    let refs: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
        .collect();
    fx.put("model.safetensors", &st_file(&refs));
    fx
}

#[test]
fn non_finite_values_are_rejected() {
    let mut bad = vec![0.01f32; 64 * 32];
    bad[100] = f32::NAN;
    let e = fixture_with_up_proj(bad).convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::NonFinite { tensor, index: 100 } if tensor == "model.layers.0.mlp.up_proj.weight"),
        "{e}"
    );
}

#[test]
fn f16_overflow_is_a_warning() {
    let mut big = vec![0.01f32; 64 * 32];
    big[7] = 1e5;
    let fx = fixture_with_up_proj(big);
    let mut out = Vec::new();
    let r = convert_to_gguf(
        &SourceFiles::new(fx.files.clone()),
        GgufType::F16,
        &mut out,
        &GgufOptions::default(),
    )
    .unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("up_proj") || w.contains("blk.0.ffn_up")),
        "{:?}",
        r.warnings
    );
}

/// A 1-layer Qwen3-MoE (hidden 32, 2 experts of width 32) whose expert 1 `up_proj` has
/// `value` at one place, converted to `ty`.
fn moe_with_expert_value(value: f32, ty: GgufType) -> larder_convert::GgufReport {
    let config = serde_json::json!({
        "architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
        "moe_intermediate_size": 32, "num_experts": 2, "num_experts_per_tok": 1,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "head_dim": 16, "max_position_embeddings": 128, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000, "vocab_size": 4, "tie_word_embeddings": true
    });
    let p = "model.layers.0.";
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut add = |n: String, s: Vec<usize>| {
        let len = s.iter().product();
        tensors.push((n, s, vec![0.01; len]));
    };
    add("model.embed_tokens.weight".into(), vec![4, 32]);
    add("model.norm.weight".into(), vec![32]);
    for (n, s) in [
        ("input_layernorm.weight", vec![32]),
        ("post_attention_layernorm.weight", vec![32]),
        ("self_attn.q_proj.weight", vec![32, 32]),
        ("self_attn.k_proj.weight", vec![16, 32]),
        ("self_attn.v_proj.weight", vec![16, 32]),
        ("self_attn.o_proj.weight", vec![32, 32]),
        ("self_attn.q_norm.weight", vec![16]),
        ("self_attn.k_norm.weight", vec![16]),
        ("mlp.gate.weight", vec![2, 32]),
    ] {
        add(format!("{p}{n}"), s);
    }
    for e in 0..2 {
        for n in ["gate_proj", "up_proj", "down_proj"] {
            add(format!("{p}mlp.experts.{e}.{n}.weight"), vec![32, 32]);
        }
    }
    let up = tensors
        .iter_mut()
        .find(|(n, ..)| n.ends_with("experts.1.up_proj.weight"))
        .unwrap();
    up.2[100] = value;
    let mut fx = Fixture::build(&config, &[]);
    let refs: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
        .collect();
    fx.put("model.safetensors", &st_file(&refs));
    convert_to_gguf(
        &SourceFiles::new(fx.files.clone()),
        ty,
        &mut Vec::new(),
        &GgufOptions::default(),
    )
    .unwrap()
}

/// Merged experts warn of F16 overflow as dense tensors do, naming the merged tensor.
#[test]
fn f16_overflow_in_an_expert_is_a_warning() {
    let overflow = |w: &String| w.contains("±inf in F16");
    let r = moe_with_expert_value(1e5, GgufType::F16);
    let hits: Vec<&String> = r.warnings.iter().filter(|w| overflow(w)).collect();
    assert_eq!(hits.len(), 1, "{:?}", r.warnings);
    assert!(hits[0].starts_with("blk.0.ffn_up_exps.weight:"), "{hits:?}");
    // 65504 is F16's largest value: no warning; nor for a type that is not F16.
    let r = moe_with_expert_value(65504.0, GgufType::F16);
    assert!(!r.warnings.iter().any(overflow), "{:?}", r.warnings);
    let r = moe_with_expert_value(1e5, GgufType::Bf16);
    assert!(!r.warnings.iter().any(overflow), "{:?}", r.warnings);
}

#[test]
fn unexpected_tensor_is_an_error() {
    let mut fx = Fixture::new();
    let z = vec![0.0f32; 32];
    // A second shard (no index: all model*.safetensors are read) with an
    // unmappable tensor.
    fx.put(
        "model-extra.safetensors",
        &st_file(&[("model.layers.0.mystery.weight", &[32], &z)]),
    );
    let e = fx.convert().unwrap_err();
    assert!(
        matches!(&e, ConvertError::UnexpectedTensor(n) if n.contains("mystery")),
        "{e}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Arbitrary sizes in config.json give a result or an error, never a panic.
    #[test]
    fn odd_configs_never_panic(
        key in proptest::sample::select(vec![
            "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "vocab_size", "head_dim", "max_position_embeddings",
        ]),
        value in proptest::prop_oneof![0u64..70, proptest::prelude::Just(u64::MAX), proptest::prelude::Just(1u64 << 40)],
        qwen3 in proptest::bool::ANY,
    ) {
        let mut fx = if qwen3 { Fixture::qwen3() } else { Fixture::new() };
        fx.edit_config(|c| c[key] = value.into());
        let _ = fx.convert();
    }
}

/// One `llama_quantize_cmp.py` process for a whole sweep: each [`Self::compare`] queues a
/// file for it and returns at once, so llama.cpp checks one file while we write the next, and
/// the interpreter and llama.cpp start once rather than for each of some 270 files.
struct LlamaQuantize {
    child: std::process::Child,
    jobs: Option<std::process::ChildStdin>,
    log: PathBuf,
}

impl LlamaQuantize {
    fn spawn(dir: &Path) -> Self {
        // Output to files, not pipes: nothing reads them until the end.
        let log = dir.join("llama_quantize_cmp.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut child = llama_cpp_python()
            .arg(crate::common::script("llama_quantize_cmp.py"))
            .stdin(std::process::Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn python");
        let jobs = child.stdin.take();
        Self { child, jobs, log }
    }

    /// Queues: llama.cpp quantizes `src` (our F32 file, or BF16) to `preset` (with `imatrix`),
    /// and must write exactly the tensors and `general.file_type` of `ours`.
    fn compare(&mut self, src: &Path, ours: &Path, preset: GgufType, imatrix: Option<&Path>) {
        use std::io::Write;
        let mut line = format!(
            "{}\t{}\t{}",
            src.display(),
            ours.display(),
            preset.file_type()
        );
        if let Some(im) = imatrix {
            line += &format!("\t{}", im.display());
        }
        // A write fails only when the process has died; `finish` reports why.
        let _ = writeln!(self.jobs.as_mut().unwrap(), "{line}");
    }

    /// Waits for every queued comparison; panics with the differences if any.
    fn finish(mut self) {
        drop(self.jobs.take());
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap();
        assert!(
            status.success(),
            "llama-quantize disagrees ({status}):\n{log}"
        );
        eprint!("{log}");
    }
}

/// llama.cpp itself as the oracle (the build `.ci/setup` makes, see
/// [`crate::common::llama_cpp_dir`]; the test fails without it):
///
/// - `llama_model_quantize`, given our F32 file of each of 15 checkpoints (every family and
///   variant: Llama, Mistral, Qwen2, Qwen3 with yarn/biases and as an embedding model,
///   Gemma 2, Gemma 3 and its multimodal text model, Phi-3 longrope, Mixtral, Qwen2-MoE,
///   Qwen3-MoE, dequantized GPT-OSS; four with 10 layers for use_more_bits and the n/8, n/16 layer rules), must
///   write exactly our tensors (types and bytes) and file type for every preset but F32, BF16
///   and Q2_K_S (which needs an importance matrix); given our F32 and BF16 files of GPT-OSS
///   as released (MXFP4 experts) and dequantized, MXFP4_MOE; and, with an importance matrix
///   in both formats, for eight presets (Q2_K_S included) on a dense model and two mixtures
///   of experts;
/// - llama.cpp loads 33 converted files of every family, tokenizes like the HF tokenizers and
///   gives finite logits (a pooled embedding for the embedding model).
///
/// About 310 comparisons, one Python process for all of them
/// ([`LlamaQuantize`]).
#[test]
fn llama_cpp_loads_converted_files() {
    let root = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (arch, dtype, tok, tied, extra, presets) in [
        (
            "llama",
            "bf16",
            "bpe",
            false,
            &[][..],
            &[GgufType::F16, GgufType::Q4KM, GgufType::Q8_0][..],
        ),
        (
            "mistral",
            "f16",
            "spm",
            false,
            &[][..],
            &[GgufType::Q4KS, GgufType::Q2K][..],
        ),
        (
            "qwen2",
            "f32",
            "bpe",
            true,
            &[][..],
            &[GgufType::Q5KM, GgufType::Q4_0, GgufType::Bf16][..],
        ),
        (
            "qwen3",
            "bf16",
            "bpe",
            true,
            &[][..],
            &[GgufType::Q4KM, GgufType::Q8_0, GgufType::F16][..],
        ),
        (
            "qwen3",
            "f16",
            "bpe",
            false,
            &["--yarn", "--bias"][..],
            &[GgufType::Q2K, GgufType::Q5_1][..],
        ),
        (
            "qwen3",
            "f32",
            "bpe",
            false,
            &["--embedding"][..],
            &[GgufType::Q8_0][..],
        ),
        (
            "gemma2",
            "bf16",
            "spm",
            true,
            &[][..],
            &[GgufType::F32, GgufType::Q4KM, GgufType::Iq4Nl][..],
        ),
        (
            "gemma3",
            "f16",
            "spm",
            true,
            &[][..],
            &[GgufType::Q8_0, GgufType::Q4KM, GgufType::Iq4Xs][..],
        ),
        (
            "gemma3",
            "bf16",
            "spm",
            true,
            &["--multimodal"][..],
            &[GgufType::Q4KM][..],
        ),
        (
            "phi3",
            "f32",
            "spm",
            false,
            &["--longrope"][..],
            &[GgufType::F16, GgufType::Q4KM][..],
        ),
        (
            "mixtral",
            "bf16",
            "bpe",
            false,
            &[][..],
            &[GgufType::Q8_0, GgufType::Q3KS][..],
        ),
        (
            "qwen2moe",
            "f16",
            "bpe",
            false,
            &[][..],
            &[GgufType::Q4KM, GgufType::Iq4Xs][..],
        ),
        (
            "qwen3moe",
            "bf16",
            "bpe",
            true,
            &[][..],
            &[GgufType::Q4KM, GgufType::Q3KL][..],
        ),
        (
            "gptoss",
            "bf16",
            "bpe",
            false,
            &[][..],
            &[GgufType::F16, GgufType::Q8_0, GgufType::Mxfp4Moe][..],
        ),
        (
            "gptoss",
            "bf16",
            "bpe",
            false,
            &["--dequantized"][..],
            &[GgufType::Mxfp4Moe][..],
        ),
    ] {
        let (dir, src) = make_model_with(root.path(), arch, dtype, tok, tied, extra);
        let arch = format!("{arch}{}", extra.join(""));
        for &preset in presets {
            let path = root.path().join(format!("{arch}-{preset}.gguf"));
            let mut out = std::fs::File::create(&path).unwrap();
            convert_to_gguf(&src, preset, &mut out, &GgufOptions::default()).unwrap();
            files.push(format!("{}={}", path.display(), dir.display()));
        }
    }
    let mut quantize = LlamaQuantize::spawn(root.path());
    // llama-quantize from our F32 file must produce exactly our tensors;
    // 10 layers exercise use_more_bits and the n/8, n/16 layer rules.
    for (arch, dtype, tok, tied, extra) in [
        ("llama", "bf16", "bpe", false, &[][..]),
        ("mistral", "f16", "spm", false, &[][..]),
        ("qwen2", "f32", "bpe", true, &[][..]),
        ("llama", "f16", "bpe", true, &["--layers", "10"][..]),
        ("qwen3", "bf16", "bpe", true, &["--layers", "10"][..]),
        ("qwen3", "f16", "bpe", false, &["--yarn", "--bias"][..]),
        ("qwen3", "f32", "bpe", false, &["--embedding"][..]),
        ("gemma2", "bf16", "spm", true, &["--layers", "10"][..]),
        ("gemma3", "f16", "spm", true, &[][..]),
        ("gemma3", "bf16", "spm", true, &["--multimodal"][..]),
        ("phi3", "f32", "spm", false, &["--longrope"][..]),
        ("mixtral", "bf16", "bpe", false, &[][..]),
        ("qwen2moe", "f16", "bpe", false, &[][..]),
        ("qwen3moe", "bf16", "bpe", true, &["--layers", "10"][..]),
        // MXFP4 experts are not requantized by llama-quantize; dequantized ones are.
        ("gptoss", "bf16", "bpe", false, &["--dequantized"][..]),
    ] {
        let (_, src) = make_model_with(&root.path().join("q"), arch, dtype, tok, tied, extra);
        let arch = format!("{arch}{}", extra.join(""));
        let f32_path = root.path().join(format!("{arch}-ref-f32.gguf"));
        let mut out = std::fs::File::create(&f32_path).unwrap();
        convert_to_gguf(&src, GgufType::F32, &mut out, &GgufOptions::default()).unwrap();
        for preset in GgufType::ALL
            .into_iter()
            .filter(|t| !matches!(t, GgufType::F32 | GgufType::Bf16 | GgufType::Q2KS))
        {
            let path = root.path().join(format!("{arch}-cmp-{preset}.gguf"));
            let mut out = std::fs::File::create(&path).unwrap();
            convert_to_gguf(&src, preset, &mut out, &GgufOptions::default()).unwrap();
            drop(out);
            quantize.compare(&f32_path, &path, preset, None);
        }
    }
    // MXFP4_MOE of GPT-OSS, as released (llama-quantize copies the MXFP4 experts and makes
    // the rest Q8_0) and dequantized (it quantizes the experts), from our F32 and BF16 files.
    for extra in [&[][..], &["--dequantized"][..]] {
        let (_, src) = make_model_with(
            &root.path().join("mx"),
            "gptoss",
            "bf16",
            "bpe",
            false,
            extra,
        );
        let tag = format!("gptoss{}", extra.join(""));
        let ours = root.path().join(format!("{tag}-mx-mxfp4_moe.gguf"));
        let mut out = std::fs::File::create(&ours).unwrap();
        convert_to_gguf(&src, GgufType::Mxfp4Moe, &mut out, &GgufOptions::default()).unwrap();
        drop(out);
        for from in [GgufType::F32, GgufType::Bf16] {
            let path = root.path().join(format!("{tag}-mx-src-{from}.gguf"));
            let mut out = std::fs::File::create(&path).unwrap();
            convert_to_gguf(&src, from, &mut out, &GgufOptions::default()).unwrap();
            drop(out);
            quantize.compare(&path, &ours, GgufType::Mxfp4Moe, None);
        }
    }
    // With an importance matrix (both formats), on a dense model and a mixture of experts.
    for (arch, extra, format) in [
        ("llama", &["--layers", "9"][..], "gguf"),
        ("llama", &["--layers", "9"][..], "dat"),
        ("qwen2moe", &[][..], "gguf"),
        ("mixtral", &[][..], "gguf"),
    ] {
        let (_, src) = make_model_with(&root.path().join("im"), arch, "f32", "bpe", false, extra);
        let tag = format!("{arch}{}-{format}", extra.join(""));
        let im = make_imatrix(root.path(), &src, &tag, format);
        let matrix = larder_convert::Imatrix::load(&im).unwrap();
        let f32_path = root.path().join(format!("{tag}-for-imatrix.gguf"));
        for preset in [
            GgufType::Q4KM,
            GgufType::Iq4Xs,
            GgufType::Iq4Nl,
            GgufType::Q2KS,
            GgufType::Q3KL,
            GgufType::Q4_0,
            GgufType::Q5_1,
            GgufType::Q6K,
        ] {
            let path = root.path().join(format!("{tag}-im-{preset}.gguf"));
            let mut out = std::fs::File::create(&path).unwrap();
            let opts = GgufOptions {
                imatrix: Some((&matrix, "x.imatrix")),
                ..GgufOptions::default()
            };
            convert_to_gguf(&src, preset, &mut out, &opts).unwrap();
            drop(out);
            quantize.compare(&f32_path, &path, preset, Some(&im));
        }
    }
    quantize.finish();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    eprintln!("{}", run_py_with_llama_cpp("llama_load.py", &files));
}

/// Gemma 2: SentencePiece, tied, norms stored as `1 + w`, soft-capping keys,
/// head_dim 64 with 8 heads (q rows twice the hidden size).
#[test]
fn gemma2_bf16_spm() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model(root.path(), "gemma2", "bf16", "spm", true);
    for preset in [
        GgufType::F32,
        GgufType::Q8_0,
        GgufType::Q4KM,
        GgufType::Q3KL,
        GgufType::Iq4Nl,
    ] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// Gemma 3 from F16 (the `1 + w` of the norms is rounded to F16, as torch
/// does), q/k norms, local and global rope bases.
#[test]
fn gemma3_f16_spm() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model(root.path(), "gemma3", "f16", "spm", true);
    for preset in [
        GgufType::F16,
        GgufType::Q4KS,
        GgufType::Q3KS,
        GgufType::Iq4Xs,
        GgufType::Q6K,
    ] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// The language model of a `Gemma3ForConditionalGeneration`: keys under
/// `text_config` (without vocab_size), `language_model.` names, a vision
/// tower to skip and 64 embedding rows beyond the tokenizer to drop.
#[test]
fn gemma3_multimodal_bf16_spm() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model_with(
        root.path(),
        "gemma3",
        "bf16",
        "spm",
        true,
        &["--multimodal"],
    );
    for preset in [GgufType::Q8_0, GgufType::Q4KM] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// Phi-3 with longrope: fused qkv (an attention-value tensor for the mixes)
/// and gate_up, the long/short factor tensors and the attention factor.
#[test]
fn phi3_f32_spm_longrope() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model_with(root.path(), "phi3", "f32", "spm", false, &["--longrope"]);
    for preset in [
        GgufType::F32,
        GgufType::Q4KM,
        GgufType::Q5KM,
        GgufType::Q3KM,
        GgufType::Iq4Nl,
    ] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// Mixtral: 8 experts merged into 3-D tensors, the router kept F32, and
/// llama.cpp's 8-expert rules (attn_v/attn_k Q8_0, attn_output Q5_K).
#[test]
fn mixtral_bf16_bpe() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model(root.path(), "mixtral", "bf16", "bpe", false);
    for preset in [
        GgufType::Q8_0,
        GgufType::Q4KM,
        GgufType::Q3KS,
        GgufType::Q2K,
    ] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// Qwen2-MoE: 4 experts plus a shared expert and its gate (which
/// llama-quantize quantizes), q/k/v biases.
#[test]
fn qwen2moe_f16_bpe_shared_expert() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model(root.path(), "qwen2moe", "f16", "bpe", false);
    for preset in [
        GgufType::F16,
        GgufType::Q4KM,
        GgufType::Q3KL,
        GgufType::Iq4Xs,
    ] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// Qwen3-MoE: 4 experts, q/k norms, head_dim != hidden / heads, tied.
#[test]
fn qwen3moe_bf16_bpe() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model(root.path(), "qwen3moe", "bf16", "bpe", true);
    for preset in [GgufType::Bf16, GgufType::Q5KS, GgufType::Q4KM] {
        convert_and_check(root.path(), &dir, &src, preset);
    }
}

/// Writes a random importance matrix (llama-imatrix's `format`: gguf or dat)
/// for the model's weights, from its F32 conversion.
fn make_imatrix(root: &Path, src: &SourceFiles, name: &str, format: &str) -> PathBuf {
    let f32_path = root.join(format!("{name}-for-imatrix.gguf"));
    let mut out = std::fs::File::create(&f32_path).unwrap();
    convert_to_gguf(src, GgufType::F32, &mut out, &GgufOptions::default()).unwrap();
    let path = root.join(format!("{name}.imatrix.{format}"));
    run_py(
        "imatrix_util.py",
        &[f32_path.to_str().unwrap(), path.to_str().unwrap(), format],
    );
    path
}

/// `--imatrix` on a dense model, both file formats: the weighted quantizers
/// (checked byte for byte against ggml's `ggml_quantize_chunk`),
/// the imatrix mix rules (IQ4_XS keeps IQ4_XS ffn_down, Q4_0 gets Q4_1 for
/// the first layers), Q2_K_S, and the `quantize.imatrix.*` keys.
#[test]
fn imatrix_dense_both_formats() {
    let root = tempfile::tempdir().unwrap();
    let (dir, src) = make_model_with(
        root.path(),
        "llama",
        "f32",
        "bpe",
        false,
        &["--layers", "9"],
    );
    for format in ["gguf", "dat"] {
        let im = make_imatrix(root.path(), &src, "llama", format);
        for preset in [
            GgufType::Q4KM,
            GgufType::Iq4Xs,
            GgufType::Q2KS,
            GgufType::Q3KM,
            GgufType::Q4_0,
            GgufType::Q5_1,
            GgufType::Iq4Nl,
            GgufType::Q6K,
            GgufType::Q8_0,
        ] {
            convert_and_check_with(root.path(), &dir, &src, preset, Some(&im));
        }
    }
}

/// `--imatrix` on mixtures of experts: one imatrix slice per expert, and an
/// expert never routed to (count 0) gets weights of 1, as in llama-quantize.
#[test]
fn imatrix_moe_per_expert() {
    let root = tempfile::tempdir().unwrap();
    for arch in ["qwen2moe", "mixtral"] {
        let (dir, src) = make_model(root.path(), arch, "bf16", "bpe", false);
        let im = make_imatrix(root.path(), &src, arch, "gguf");
        for preset in [GgufType::Q4KM, GgufType::Iq4Xs, GgufType::Q3KS] {
            convert_and_check_with(root.path(), &dir, &src, preset, Some(&im));
        }
    }
}

/// An imatrix made for another model is refused before any work.
#[test]
fn imatrix_for_another_model_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (_, small) = make_model_with(
        root.path(),
        "llama",
        "f32",
        "bpe",
        false,
        &["--layers", "3"],
    );
    let (_, big) = make_model_with(
        root.path(),
        "llama",
        "f32",
        "bpe",
        false,
        &["--hidden", "512"],
    );
    let im = make_imatrix(root.path(), &small, "small", "dat");
    let m = larder_convert::Imatrix::load(&im).unwrap();
    let opts = GgufOptions {
        imatrix: Some((&m, "small.dat")),
        ..GgufOptions::default()
    };
    let e = convert_to_gguf(&big, GgufType::Q4KM, &mut Vec::new(), &opts).unwrap_err();
    assert!(
        matches!(
            &e,
            ConvertError::Imatrix(larder_convert::ImatrixError::SizeMismatch { .. })
        ),
        "{e}"
    );
    let (_, qwen) = make_model(root.path(), "qwen2", "f32", "bpe", true);
    let e = convert_to_gguf(&qwen, GgufType::Q4KM, &mut Vec::new(), &opts).unwrap_err();
    assert!(
        matches!(
            &e,
            ConvertError::Imatrix(larder_convert::ImatrixError::UnknownTensor(_))
        ),
        "{e}"
    );
}
