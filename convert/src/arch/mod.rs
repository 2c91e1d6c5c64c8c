//! Model architectures: reading `config.json`, the HF → GGUF tensor-name map,
//! the shapes each tensor must have, and the GGUF metadata keys.
//!
//! Mistral is converted exactly like Llama (llama.cpp registers
//! `MistralForCausalLM` to its `LlamaModel`); Qwen2 and Qwen3 (dense) have
//! their own modules.

pub mod llama;
pub mod qwen2;
pub mod qwen3;

use serde_json::Value;

use crate::error::{ConvertError, Result};
use crate::gguf::MetaValue;

/// The GGUF architecture a checkpoint converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `llama` (Llama 1–3.x, Mistral).
    Llama,
    /// `qwen2`.
    Qwen2,
    /// `qwen3` (the dense models; not Qwen3-MoE).
    Qwen3,
}

impl Arch {
    /// The `general.architecture` string and key prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
        }
    }
}

/// `rope_scaling` / `rope_parameters` from config.json.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeScaling {
    /// `rope_type` (or legacy `type`).
    pub kind: String,
    /// `factor`.
    pub factor: Option<f64>,
    /// `original_max_position_embeddings` inside the scaling object.
    pub original_context: Option<u64>,
    /// Llama 3: `low_freq_factor`.
    pub low_freq_factor: Option<f64>,
    /// Llama 3: `high_freq_factor`.
    pub high_freq_factor: Option<f64>,
    /// Yarn: `extrapolation_factor`.
    pub extrapolation_factor: Option<f64>,
    /// Yarn: `attention_factor` (or `attn_factor`).
    pub attention_factor: Option<f64>,
    /// Yarn: `beta_fast`.
    pub beta_fast: Option<f64>,
    /// Yarn: `beta_slow`.
    pub beta_slow: Option<f64>,
}

/// The hyper-parameters the converter needs, from config.json.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Target architecture.
    pub arch: Arch,
    /// `architectures[0]` as written by transformers.
    pub hf_arch: String,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// Context length (first of the usual spellings).
    pub context_length: Option<u64>,
    /// `hidden_size`.
    pub hidden: usize,
    /// `num_hidden_layers`.
    pub n_layer: usize,
    /// `intermediate_size`.
    pub ff: usize,
    /// `num_attention_heads`.
    pub n_head: usize,
    /// `num_key_value_heads` (defaults to `n_head`).
    pub n_head_kv: usize,
    /// Whether `num_key_value_heads` was present.
    pub n_head_kv_explicit: bool,
    /// `head_dim` if given explicitly.
    pub head_dim_explicit: Option<usize>,
    /// `rope_theta`.
    pub rope_theta: Option<f64>,
    /// `rms_norm_eps`.
    pub rms_eps: Option<f64>,
    /// `tie_word_embeddings` (default false).
    pub tie_embeddings: bool,
    /// `attention_bias` (Qwen3: q/k/v projections carry biases; default false).
    pub attention_bias: bool,
    /// Rope scaling, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Top-level `original_max_position_embeddings`.
    pub original_max_position_embeddings: Option<u64>,
    /// The whole config, for special-token ids.
    pub raw: Value,
}

fn get_u(v: &Value, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_u64))
}

impl ModelConfig {
    /// Parses config.json.
    pub fn parse(text: &[u8]) -> Result<Self> {
        const F: &str = "config.json";
        let raw: Value =
            serde_json::from_slice(text).map_err(|e| ConvertError::json(F, e.to_string()))?;
        // Some configs nest the LM under text_config; we only handle plain ones.
        let hf_arch = raw
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .ok_or_else(|| ConvertError::json(F, "missing `architectures`"))?
            .to_owned();
        let arch = match hf_arch.as_str() {
            "LlamaForCausalLM" | "MistralForCausalLM" => Arch::Llama,
            "Qwen2ForCausalLM" => Arch::Qwen2,
            "Qwen3ForCausalLM" => Arch::Qwen3,
            other => return Err(ConvertError::UnsupportedArchitecture(other.to_owned())),
        };
        let need = |keys: &[&str]| -> Result<usize> {
            let v = get_u(&raw, keys)
                .ok_or_else(|| ConvertError::json(F, format!("missing `{}`", keys[0])))?;
            usize::try_from(v)
                .map_err(|_| ConvertError::json(F, format!("`{}` too large", keys[0])))
        };
        let hidden = need(&["hidden_size", "n_embd", "dim"])?;
        let n_layer = need(&["num_hidden_layers", "n_layers", "n_layer", "num_layers"])?;
        let ff = need(&["intermediate_size"])?;
        let n_head = need(&["num_attention_heads", "n_head"])?;
        let vocab_size = need(&["vocab_size"])?;
        let kv = get_u(&raw, &["num_key_value_heads"]);
        let n_head_kv = kv.map_or(n_head, |v| v as usize);
        let head_dim_explicit = get_u(&raw, &["head_dim"]).map(|v| v as usize);
        if [n_head, n_head_kv, hidden, n_layer, ff, vocab_size].contains(&0)
            || head_dim_explicit == Some(0)
        {
            return Err(ConvertError::json(
                F,
                "sizes and head counts must be positive",
            ));
        }
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(ConvertError::json(
                F,
                "num_attention_heads is not a multiple of num_key_value_heads",
            ));
        }
        if head_dim_explicit.is_none() && !hidden.is_multiple_of(n_head) {
            return Err(ConvertError::json(
                F,
                "hidden_size is not a multiple of num_attention_heads",
            ));
        }
        if !head_dim_explicit
            .unwrap_or(hidden / n_head)
            .is_multiple_of(2)
        {
            return Err(ConvertError::json(
                F,
                "the attention head dimension must be even for rope",
            ));
        }
        let scaling = raw
            .get("rope_scaling")
            .filter(|v| v.is_object())
            .or_else(|| {
                raw.get("rope_parameters").filter(|v| {
                    v.get("rope_type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t != "default")
                })
            });
        let rope_scaling = scaling.and_then(|s| {
            let kind = s
                .get("rope_type")
                .or_else(|| s.get("type"))
                .and_then(Value::as_str)?
                .to_owned();
            Some(RopeScaling {
                kind,
                factor: s.get("factor").and_then(Value::as_f64),
                original_context: s
                    .get("original_max_position_embeddings")
                    .and_then(Value::as_u64),
                low_freq_factor: s.get("low_freq_factor").and_then(Value::as_f64),
                high_freq_factor: s.get("high_freq_factor").and_then(Value::as_f64),
                extrapolation_factor: s.get("extrapolation_factor").and_then(Value::as_f64),
                attention_factor: s
                    .get("attention_factor")
                    .or_else(|| s.get("attn_factor"))
                    .and_then(Value::as_f64),
                beta_fast: s.get("beta_fast").and_then(Value::as_f64),
                beta_slow: s.get("beta_slow").and_then(Value::as_f64),
            })
        });
        let rope_theta = raw.get("rope_theta").and_then(Value::as_f64).or_else(|| {
            raw.get("rope_parameters")
                .and_then(|p| p.get("rope_theta"))
                .and_then(Value::as_f64)
        });
        Ok(Self {
            arch,
            hf_arch,
            vocab_size,
            context_length: get_u(
                &raw,
                &[
                    "max_position_embeddings",
                    "n_ctx",
                    "n_positions",
                    "max_length",
                    "max_sequence_length",
                    "model_max_length",
                ],
            ),
            hidden,
            n_layer,
            ff,
            n_head,
            n_head_kv,
            n_head_kv_explicit: kv.is_some(),
            head_dim_explicit,
            rope_theta,
            rms_eps: raw.get("rms_norm_eps").and_then(Value::as_f64),
            tie_embeddings: raw
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            attention_bias: raw
                .get("attention_bias")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            rope_scaling,
            original_max_position_embeddings: get_u(&raw, &["original_max_position_embeddings"]),
            raw,
        })
    }

    /// Attention head dimension.
    pub fn head_dim(&self) -> usize {
        self.head_dim_explicit.unwrap_or(self.hidden / self.n_head)
    }

    /// `n_head / n_head_kv`.
    pub fn n_gqa(&self) -> usize {
        self.n_head / self.n_head_kv
    }

    /// GGUF metadata for the architecture (without tokenizer and file type).
    pub fn metadata(&self) -> Vec<(String, MetaValue)> {
        match self.arch {
            Arch::Llama => llama::metadata(self),
            Arch::Qwen2 => qwen2::metadata(self),
            Arch::Qwen3 => qwen3::metadata(self),
        }
    }

    /// Keys common to every architecture (`TextModel.set_gguf_parameters`).
    fn base_metadata(&self) -> Vec<(String, MetaValue)> {
        let a = self.arch.name();
        let mut kv = Vec::new();
        let mut u = |k: &str, v: usize| kv.push((format!("{a}.{k}"), MetaValue::U32(v as u32)));
        if let Some(c) = self.context_length {
            u("context_length", c as usize);
        }
        u("embedding_length", self.hidden);
        u("feed_forward_length", self.ff);
        u("block_count", self.n_layer);
        u("attention.head_count", self.n_head);
        if self.n_head_kv_explicit {
            u("attention.head_count_kv", self.n_head_kv);
        }
        if let Some(hd) = self.head_dim_explicit {
            u("attention.key_length", hd);
            u("attention.value_length", hd);
        }
        if let Some(t) = self.rope_theta {
            kv.push((format!("{a}.rope.freq_base"), MetaValue::F32(t as f32)));
        }
        if let Some(e) = self.rms_eps {
            kv.push((
                format!("{a}.attention.layer_norm_rms_epsilon"),
                MetaValue::F32(e as f32),
            ));
        }
        kv
    }

    /// Rope-scaling keys shared by the architectures (linear and yarn).
    fn rope_scaling_metadata(&self, kv: &mut Vec<(String, MetaValue)>) {
        let a = self.arch.name();
        let Some(s) = &self.rope_scaling else { return };
        let Some(factor) = s.factor else { return };
        match s.kind.as_str() {
            "linear" => {
                kv.push((
                    format!("{a}.rope.scaling.type"),
                    MetaValue::Str("linear".into()),
                ));
                kv.push((
                    format!("{a}.rope.scaling.factor"),
                    MetaValue::F32(factor as f32),
                ));
            }
            "yarn" => {
                kv.push((
                    format!("{a}.rope.scaling.type"),
                    MetaValue::Str("yarn".into()),
                ));
                kv.push((
                    format!("{a}.rope.scaling.factor"),
                    MetaValue::F32(factor as f32),
                ));
                // llama.cpp takes the top-level key when the object has none.
                if let Some(o) = s.original_context.or(self.original_max_position_embeddings) {
                    kv.push((
                        format!("{a}.rope.scaling.original_context_length"),
                        MetaValue::U32(o as u32),
                    ));
                }
                for (key, v) in [
                    ("yarn_ext_factor", s.extrapolation_factor),
                    ("yarn_attn_factor", s.attention_factor),
                    ("yarn_beta_fast", s.beta_fast),
                    ("yarn_beta_slow", s.beta_slow),
                ] {
                    if let Some(v) = v {
                        kv.push((format!("{a}.rope.scaling.{key}"), MetaValue::F32(v as f32)));
                    }
                }
            }
            _ => {}
        }
    }
}

/// What to do with an HF tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedTensor {
    /// GGUF name.
    pub gguf: String,
    /// Required shape (numpy order).
    pub shape: Vec<usize>,
    /// Apply the Llama Q/K row permutation with this many heads.
    pub permute_heads: Option<usize>,
}

/// Maps an HF tensor name to its GGUF name and required shape; `Ok(None)`
/// for tensors the converter drops (`rotary_emb.inv_freq`).
pub fn map_tensor(cfg: &ModelConfig, name: &str) -> Result<Option<MappedTensor>> {
    if name.ends_with(".rotary_emb.inv_freq") || name.ends_with(".attention.masked_bias") {
        return Ok(None);
    }
    let h = cfg.hidden;
    // Saturating: absurd configs then simply mismatch the stored shapes.
    let q_rows = cfg.n_head.saturating_mul(cfg.head_dim());
    let kv_rows = cfg.n_head_kv.saturating_mul(cfg.head_dim());
    let llama = cfg.arch == Arch::Llama;
    let simple = |g: &str, shape: Vec<usize>| {
        Ok(Some(MappedTensor {
            gguf: g.to_owned(),
            shape,
            permute_heads: None,
        }))
    };
    if name == "lm_head.weight" {
        return simple("output.weight", vec![cfg.vocab_size, h]);
    }
    // The decoder's tensors sit under `model.`, except in checkpoints saved
    // from the bare decoder (sentence-transformers embedding models such as
    // Qwen3-Embedding), which llama.cpp's name table maps the same way.
    let bare = name.strip_prefix("model.").unwrap_or(name);
    match bare {
        "embed_tokens.weight" => return simple("token_embd.weight", vec![cfg.vocab_size, h]),
        "norm.weight" => return simple("output_norm.weight", vec![h]),
        _ => {}
    }
    let unexpected = || ConvertError::UnexpectedTensor(name.to_owned());
    let rest = bare.strip_prefix("layers.").ok_or_else(unexpected)?;
    let (idx, suffix) = rest.split_once('.').ok_or_else(unexpected)?;
    let layer: usize = idx.parse().map_err(|_| unexpected())?;
    if layer >= cfg.n_layer || idx != layer.to_string() {
        return Err(unexpected());
    }
    let (g, shape, permute) = match suffix {
        "input_layernorm.weight" => ("attn_norm.weight", vec![h], None),
        "post_attention_layernorm.weight" => ("ffn_norm.weight", vec![h], None),
        "self_attn.q_proj.weight" => (
            "attn_q.weight",
            vec![q_rows, h],
            llama.then_some(cfg.n_head),
        ),
        "self_attn.k_proj.weight" => (
            "attn_k.weight",
            vec![kv_rows, h],
            llama.then_some(cfg.n_head_kv),
        ),
        "self_attn.v_proj.weight" => ("attn_v.weight", vec![kv_rows, h], None),
        "self_attn.o_proj.weight" => ("attn_output.weight", vec![h, q_rows], None),
        "self_attn.q_proj.bias" => ("attn_q.bias", vec![q_rows], llama.then_some(cfg.n_head)),
        "self_attn.k_proj.bias" => ("attn_k.bias", vec![kv_rows], llama.then_some(cfg.n_head_kv)),
        "self_attn.v_proj.bias" => ("attn_v.bias", vec![kv_rows], None),
        "mlp.gate_proj.weight" => ("ffn_gate.weight", vec![cfg.ff, h], None),
        "mlp.up_proj.weight" => ("ffn_up.weight", vec![cfg.ff, h], None),
        "mlp.down_proj.weight" => ("ffn_down.weight", vec![h, cfg.ff], None),
        // Qwen3's per-head RMS norms of queries and keys, one weight per head dimension.
        "self_attn.q_norm.weight" if cfg.arch == Arch::Qwen3 => {
            ("attn_q_norm.weight", vec![cfg.head_dim()], None)
        }
        "self_attn.k_norm.weight" if cfg.arch == Arch::Qwen3 => {
            ("attn_k_norm.weight", vec![cfg.head_dim()], None)
        }
        _ => return Err(unexpected()),
    };
    Ok(Some(MappedTensor {
        gguf: format!("blk.{layer}.{g}"),
        shape,
        permute_heads: permute,
    }))
}

/// GGUF names that must be present for the model to load.
/// Yields `(gguf name, hf name)` pairs; `prefix` is the decoder's prefix in
/// the checkpoint (`"model."`, or `""` for a bare decoder). `lm_head` is
/// required only when `need_output` (untied, and not an embedding model,
/// whose LM head llama.cpp neither needs nor checks for).
pub fn required_tensors<'a>(
    cfg: &'a ModelConfig,
    prefix: &'a str,
    need_output: bool,
) -> impl Iterator<Item = (String, String)> + 'a {
    let mut global = vec![
        (
            "token_embd.weight".to_owned(),
            format!("{prefix}embed_tokens.weight"),
        ),
        (
            "output_norm.weight".to_owned(),
            format!("{prefix}norm.weight"),
        ),
    ];
    if need_output {
        global.push(("output.weight".to_owned(), "lm_head.weight".to_owned()));
    }
    let mut per_layer = vec![
        ("attn_norm.weight", "input_layernorm.weight"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"),
        ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"),
        ("ffn_up.weight", "mlp.up_proj.weight"),
        ("ffn_down.weight", "mlp.down_proj.weight"),
    ];
    if cfg.arch == Arch::Qwen3 {
        per_layer.extend([
            ("attn_q_norm.weight", "self_attn.q_norm.weight"),
            ("attn_k_norm.weight", "self_attn.k_norm.weight"),
        ]);
    }
    if cfg.arch == Arch::Qwen2 || (cfg.arch == Arch::Qwen3 && cfg.attention_bias) {
        per_layer.extend([
            ("attn_q.bias", "self_attn.q_proj.bias"),
            ("attn_k.bias", "self_attn.k_proj.bias"),
            ("attn_v.bias", "self_attn.v_proj.bias"),
        ]);
    }
    // Lazy, so that an absurd `num_hidden_layers` costs nothing before the
    // first missing tensor stops the caller.
    let layers = (0..cfg.n_layer).flat_map(move |i| {
        per_layer
            .clone()
            .into_iter()
            .map(move |(g, h)| (format!("blk.{i}.{g}"), format!("{prefix}layers.{i}.{h}")))
    });
    global.into_iter().chain(layers)
}

/// Sort key reproducing llama.cpp's `weight_name_comparer`: tensors outside
/// `blk.N.` first (alphabetical), then by layer number, then alphabetical.
pub fn tensor_order_key(name: &str) -> (i64, String) {
    if let Some(rest) = name.strip_prefix("blk.")
        && let Some((n, _)) = rest.split_once('.')
        && let Ok(n) = n.parse::<i64>()
    {
        return (n, name.to_owned());
    }
    (-1, name.to_owned())
}

/// Layer index of a `blk.N.*` name.
pub fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split_once('.')?.0.parse().ok()
}
