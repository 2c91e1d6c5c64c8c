//! Model architectures: reading `config.json`, the HF → GGUF tensor-name map,
//! the shapes each tensor must have, and the GGUF metadata keys.
//!
//! Mistral and Mixtral are converted exactly like Llama (llama.cpp registers
//! `MistralForCausalLM` and `MixtralForCausalLM` to its `LlamaModel`); the
//! other families have their own modules: Qwen2, Qwen3 (dense), the Qwen
//! mixtures of experts ([`moe`]), Gemma 2 and 3 ([`gemma`]), Phi-3/Phi-4
//! ([`phi3`]) and GPT-OSS ([`gptoss`]).

pub mod gemma;
pub mod gptoss;
pub mod llama;
pub mod moe;
pub mod phi3;
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
    /// `qwen3` (the dense models).
    Qwen3,
    /// `qwen2moe` (Qwen1.5-MoE, Qwen2-57B-A14B).
    Qwen2Moe,
    /// `qwen3moe` (Qwen3-30B-A3B, Qwen3-235B-A22B).
    Qwen3Moe,
    /// `gemma2`.
    Gemma2,
    /// `gemma3` (the text model; a vision tower is skipped).
    Gemma3,
    /// `phi3` (Phi-3, Phi-3.5, Phi-4).
    Phi3,
    /// `gpt-oss` (gpt-oss-20b, gpt-oss-120b).
    GptOss,
}

/// The `architectures[0]` values the converter accepts, for error messages.
pub const SUPPORTED: [&str; 12] = [
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "MixtralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen2MoeForCausalLM",
    "Qwen3ForCausalLM",
    "Qwen3MoeForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "Gemma3ForConditionalGeneration",
    "Phi3ForCausalLM",
    "GptOssForCausalLM",
];

impl Arch {
    /// The `general.architecture` string and key prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Qwen2Moe => "qwen2moe",
            Self::Qwen3Moe => "qwen3moe",
            Self::Gemma2 => "gemma2",
            Self::Gemma3 => "gemma3",
            Self::Phi3 => "phi3",
            Self::GptOss => "gpt-oss",
        }
    }

    /// Whether the GGUF architecture has per-head q/k RMS norms.
    pub fn has_qk_norm(self) -> bool {
        matches!(self, Self::Qwen3 | Self::Qwen3Moe | Self::Gemma3)
    }

    /// Whether HF norm weights are stored as `w` with the model computing
    /// `x·(1 + w)`, which llama.cpp's converter turns into `1 + w`.
    pub fn shifts_norms(self) -> bool {
        matches!(self, Self::Gemma2 | Self::Gemma3)
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
    /// Rows of `token_embd` (= `vocab_size`, except that Gemma 3 keeps only the rows its
    /// tokenizer has).
    pub embed_rows: usize,
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
    /// Routed experts per MoE layer (`num_local_experts` / `num_experts`); 0 if dense.
    pub n_expert: usize,
    /// Experts used per token (`num_experts_per_tok`).
    pub n_expert_used: Option<usize>,
    /// Width of one routed expert (`moe_intermediate_size`; Mixtral: `intermediate_size`).
    pub expert_ff: usize,
    /// Width of the shared expert (`shared_expert_intermediate_size`), if any.
    pub shared_expert_ff: Option<usize>,
    /// Whether `vocab_size` was absent and taken from the tokenizer (Gemma 3's multimodal
    /// configs omit it; the embedding then loses its out-of-vocabulary rows).
    pub vocab_from_tokenizer: bool,
    /// The whole config (with a multimodal `text_config` merged into the top level), for
    /// special-token ids and family-specific keys.
    pub raw: Value,
}

fn u2(kv: &mut Vec<(String, MetaValue)>, arch: &str, key: &str, v: usize) {
    kv.push((format!("{arch}.{key}"), MetaValue::U32(v as u32)));
}

fn get_u(v: &Value, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_u64))
}

impl ModelConfig {
    /// Parses config.json.
    pub fn parse(text: &[u8]) -> Result<Self> {
        const F: &str = "config.json";
        let mut raw: Value =
            serde_json::from_slice(text).map_err(|e| ConvertError::json(F, e.to_string()))?;
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
            "MixtralForCausalLM" => Arch::Llama,
            "Qwen2MoeForCausalLM" => Arch::Qwen2Moe,
            "Qwen3MoeForCausalLM" => Arch::Qwen3Moe,
            "Gemma2ForCausalLM" => Arch::Gemma2,
            "Gemma3ForCausalLM" | "Gemma3ForConditionalGeneration" => Arch::Gemma3,
            "Phi3ForCausalLM" => Arch::Phi3,
            "GptOssForCausalLM" => Arch::GptOss,
            other => {
                return Err(ConvertError::UnsupportedArchitecture {
                    name: other.to_owned(),
                    supported: &SUPPORTED,
                });
            }
        };
        // A multimodal config keeps the language model's keys under `text_config`; llama.cpp
        // lifts them to the top level (they win over top-level keys of the same name).
        if let Some(Value::Object(text)) = raw.get("text_config").cloned()
            && let Value::Object(top) = &mut raw
        {
            top.extend(text);
        }
        if arch == Arch::Gemma3 {
            gemma::gemma3_defaults(&mut raw);
        }
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
        // Gemma 3's multimodal configs omit vocab_size; the tokenizer then decides it.
        let vocab_from_tokenizer = arch == Arch::Gemma3 && get_u(&raw, &["vocab_size"]).is_none();
        let vocab_size = if vocab_from_tokenizer {
            1
        } else {
            need(&["vocab_size"])?
        };
        let n_expert = get_u(
            &raw,
            &["num_local_experts", "num_experts", "n_routed_experts"],
        )
        .unwrap_or(0) as usize;
        let moe = matches!(arch, Arch::Qwen2Moe | Arch::Qwen3Moe | Arch::GptOss)
            || hf_arch == "MixtralForCausalLM";
        if moe && n_expert == 0 {
            return Err(ConvertError::json(
                F,
                "a mixture of experts needs `num_experts` > 0",
            ));
        }
        if n_expert > 4096 {
            return Err(ConvertError::json(F, "implausibly many experts"));
        }
        let expert_ff = match arch {
            Arch::Qwen2Moe | Arch::Qwen3Moe => need(&["moe_intermediate_size"])?,
            _ => ff,
        };
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
        let cfg = Self {
            arch,
            hf_arch,
            vocab_size,
            embed_rows: vocab_size,
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
            n_expert: if moe { n_expert } else { 0 },
            n_expert_used: get_u(
                &raw,
                &[
                    "num_experts_per_tok",
                    "num_experts_per_token",
                    "top_k_experts",
                ],
            )
            .map(|v| v as usize),
            expert_ff,
            shared_expert_ff: get_u(&raw, &["shared_expert_intermediate_size"]).map(|v| v as usize),
            vocab_from_tokenizer,
            raw,
        };
        match arch {
            Arch::Gemma2 => gemma::gemma2_check(&cfg)?,
            Arch::Gemma3 => gemma::gemma3_check(&cfg)?,
            Arch::Phi3 => phi3::check(&cfg)?,
            Arch::GptOss => gptoss::check(&cfg)?,
            _ => {}
        }
        Ok(cfg)
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
            Arch::Qwen2Moe | Arch::Qwen3Moe => moe::qwen_metadata(self),
            Arch::Gemma2 => gemma::gemma2_metadata(self),
            Arch::Gemma3 => gemma::gemma3_metadata(self),
            Arch::Phi3 => phi3::metadata(self),
            Arch::GptOss => gptoss::metadata(self),
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
        // `TextModel` writes the expert counts whenever config.json has them.
        if let Some(n) = get_u(
            &self.raw,
            &["num_local_experts", "num_experts", "n_routed_experts"],
        ) {
            u2(&mut kv, a, "expert_count", n as usize);
        }
        if let Some(n) = self.n_expert_used {
            u2(&mut kv, a, "expert_used_count", n);
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
    /// Required shape of the checkpoint tensor (numpy order); for an expert,
    /// the shape of that one expert.
    pub shape: Vec<usize>,
    /// Apply the Llama Q/K row permutation with this many heads.
    pub permute_heads: Option<usize>,
    /// This checkpoint tensor is expert number `e` of the merged 3-D GGUF
    /// tensor `[n_expert, rows, cols]`.
    pub expert: Option<usize>,
    /// Store `1 + w` (Gemma's norms).
    pub shift_norm: bool,
    /// The checkpoint may hold more rows than `shape[0]`; keep the first
    /// ones (Gemma 3 drops embedding rows beyond the tokenizer's vocabulary).
    pub truncate_rows: bool,
}

impl MappedTensor {
    fn new(gguf: String, shape: Vec<usize>) -> Self {
        Self {
            gguf,
            shape,
            permute_heads: None,
            expert: None,
            shift_norm: false,
            truncate_rows: false,
        }
    }
}

/// The checkpoint name with a multimodal wrapper's `language_model.` removed
/// (`language_model.model.layers.…` and `model.language_model.layers.…` both
/// become the plain decoder names, as llama.cpp's converter does), or `None`
/// for a tensor of a vision tower or projector, which a text GGUF skips.
fn text_model_name(cfg: &ModelConfig, name: &str) -> Option<String> {
    if cfg.arch != Arch::Gemma3 {
        return Some(name.to_owned());
    }
    if [
        "vision_tower.",
        "vision_model.",
        "multi_modal_projector.",
        "multimodal_projector.",
    ]
    .iter()
    .any(|p| name.contains(p))
    {
        return None;
    }
    Some(name.replace("language_model.", ""))
}

/// Maps an HF tensor name to its GGUF name and required shape; `Ok(None)`
/// for tensors the converter drops (`rotary_emb.inv_freq`, Gemma 2's unused
/// `lm_head`, a multimodal model's vision tower).
pub fn map_tensor(cfg: &ModelConfig, name: &str) -> Result<Option<MappedTensor>> {
    if name.ends_with(".rotary_emb.inv_freq")
        || name.ends_with(".attention.masked_bias")
        || name.ends_with(".attention.bias")
    {
        return Ok(None);
    }
    let Some(text_name) = text_model_name(cfg, name) else {
        return Ok(None);
    };
    let name_in = name;
    let name = text_name.as_str();
    let h = cfg.hidden;
    let shift = cfg.arch.shifts_norms() && name.ends_with("norm.weight");
    if name == "lm_head.weight" {
        // llama.cpp's Gemma 2 ties the output to the embedding and skips any lm_head.
        if cfg.arch == Arch::Gemma2 {
            return Ok(None);
        }
        return Ok(Some(MappedTensor::new(
            "output.weight".into(),
            vec![cfg.vocab_size, h],
        )));
    }
    // The decoder's tensors sit under `model.`, except in checkpoints saved
    // from the bare decoder (sentence-transformers embedding models such as
    // Qwen3-Embedding), which llama.cpp's name table maps the same way.
    let bare = name.strip_prefix("model.").unwrap_or(name);
    match bare {
        "embed_tokens.weight" => {
            let mut m = MappedTensor::new("token_embd.weight".into(), vec![cfg.embed_rows, h]);
            m.truncate_rows = cfg.arch == Arch::Gemma3;
            return Ok(Some(m));
        }
        "norm.weight" => {
            let mut m = MappedTensor::new("output_norm.weight".into(), vec![h]);
            m.shift_norm = shift;
            return Ok(Some(m));
        }
        _ => {}
    }
    let unexpected = || ConvertError::UnexpectedTensor(name_in.to_owned());
    let (layer, suffix) = split_layer(cfg, bare).ok_or_else(unexpected)?;
    let (g, shape, permute, expert) = layer_tensor(cfg, suffix).ok_or_else(unexpected)?;
    Ok(Some(MappedTensor {
        gguf: format!("blk.{layer}.{g}"),
        shape,
        permute_heads: permute,
        expert,
        shift_norm: shift,
        truncate_rows: false,
    }))
}

/// `(N, REST)` of `layers.N.REST` (after the decoder's prefix), for a layer the model has.
fn split_layer<'a>(cfg: &ModelConfig, bare: &'a str) -> Option<(usize, &'a str)> {
    let (idx, suffix) = bare.strip_prefix("layers.")?.split_once('.')?;
    let layer: usize = idx.parse().ok()?;
    (layer < cfg.n_layer && idx == layer.to_string()).then_some((layer, suffix))
}

/// The layer and suffix of a checkpoint tensor `model.layers.N.REST` (or, from a bare decoder,
/// `layers.N.REST`), for a layer the model has.
pub fn layer_and_suffix<'a>(cfg: &ModelConfig, name: &'a str) -> Option<(usize, &'a str)> {
    split_layer(cfg, name.strip_prefix("model.").unwrap_or(name))
}

/// A layer tensor: GGUF suffix, shape, permutation heads, expert index.
type LayerTensor = (&'static str, Vec<usize>, Option<usize>, Option<usize>);

/// Splits `experts.E.REST` into `(E, REST)`.
fn expert_suffix<'a>(cfg: &ModelConfig, s: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    let (e_str, rest) = s.strip_prefix(prefix)?.split_once('.')?;
    let e: usize = e_str.parse().ok()?;
    (e < cfg.n_expert && e_str == e.to_string()).then_some((e, rest))
}

/// The per-layer tensors of `cfg`'s architecture, by HF suffix.
fn layer_tensor(cfg: &ModelConfig, suffix: &str) -> Option<LayerTensor> {
    if cfg.arch == Arch::GptOss {
        return gptoss::layer_tensor(cfg, suffix).map(|(g, shape)| (g, shape, None, None));
    }
    let h = cfg.hidden;
    let hd = cfg.head_dim();
    // Saturating: absurd configs then simply mismatch the stored shapes.
    let q_rows = cfg.n_head.saturating_mul(hd);
    let kv_rows = cfg.n_head_kv.saturating_mul(hd);
    let llama = cfg.arch == Arch::Llama;
    let gemma = matches!(cfg.arch, Arch::Gemma2 | Arch::Gemma3);
    let plain = |g: &'static str, shape: Vec<usize>| Some((g, shape, None, None));
    if cfg.n_expert > 0 {
        let (eff, ne) = (cfg.expert_ff, cfg.n_expert);
        if llama {
            if suffix == "block_sparse_moe.gate.weight" {
                return plain("ffn_gate_inp.weight", vec![ne, h]);
            }
            if let Some((e, w)) = expert_suffix(cfg, suffix, "block_sparse_moe.experts.") {
                let (g, shape) = match w {
                    "w1.weight" => ("ffn_gate_exps.weight", vec![eff, h]),
                    "w3.weight" => ("ffn_up_exps.weight", vec![eff, h]),
                    "w2.weight" => ("ffn_down_exps.weight", vec![h, eff]),
                    _ => return None,
                };
                return Some((g, shape, None, Some(e)));
            }
        } else {
            if suffix == "mlp.gate.weight" {
                return plain("ffn_gate_inp.weight", vec![ne, h]);
            }
            if let Some((e, w)) = expert_suffix(cfg, suffix, "mlp.experts.") {
                let (g, shape) = match w {
                    "gate_proj.weight" => ("ffn_gate_exps.weight", vec![eff, h]),
                    "up_proj.weight" => ("ffn_up_exps.weight", vec![eff, h]),
                    "down_proj.weight" => ("ffn_down_exps.weight", vec![h, eff]),
                    _ => return None,
                };
                return Some((g, shape, None, Some(e)));
            }
            if let Some(sff) = cfg.shared_expert_ff {
                match suffix {
                    "mlp.shared_expert.gate_proj.weight" => {
                        return plain("ffn_gate_shexp.weight", vec![sff, h]);
                    }
                    "mlp.shared_expert.up_proj.weight" => {
                        return plain("ffn_up_shexp.weight", vec![sff, h]);
                    }
                    "mlp.shared_expert.down_proj.weight" => {
                        return plain("ffn_down_shexp.weight", vec![h, sff]);
                    }
                    "mlp.shared_expert_gate.weight" => {
                        return plain("ffn_gate_inp_shexp.weight", vec![1, h]);
                    }
                    _ => {}
                }
            }
        }
    }
    match suffix {
        "input_layernorm.weight" => plain("attn_norm.weight", vec![h]),
        "post_attention_layernorm.weight" if gemma => plain("post_attention_norm.weight", vec![h]),
        "post_attention_layernorm.weight" => plain("ffn_norm.weight", vec![h]),
        "pre_feedforward_layernorm.weight" if gemma => plain("ffn_norm.weight", vec![h]),
        "post_feedforward_layernorm.weight" if gemma => plain("post_ffw_norm.weight", vec![h]),
        "self_attn.qkv_proj.weight" if cfg.arch == Arch::Phi3 => {
            plain("attn_qkv.weight", vec![q_rows + 2 * kv_rows, h])
        }
        "self_attn.q_proj.weight" if cfg.arch != Arch::Phi3 => Some((
            "attn_q.weight",
            vec![q_rows, h],
            llama.then_some(cfg.n_head),
            None,
        )),
        "self_attn.k_proj.weight" if cfg.arch != Arch::Phi3 => Some((
            "attn_k.weight",
            vec![kv_rows, h],
            llama.then_some(cfg.n_head_kv),
            None,
        )),
        "self_attn.v_proj.weight" if cfg.arch != Arch::Phi3 => {
            plain("attn_v.weight", vec![kv_rows, h])
        }
        "self_attn.o_proj.weight" => plain("attn_output.weight", vec![h, q_rows]),
        "self_attn.q_proj.bias" if !gemma && cfg.arch != Arch::Phi3 => Some((
            "attn_q.bias",
            vec![q_rows],
            llama.then_some(cfg.n_head),
            None,
        )),
        "self_attn.k_proj.bias" if !gemma && cfg.arch != Arch::Phi3 => Some((
            "attn_k.bias",
            vec![kv_rows],
            llama.then_some(cfg.n_head_kv),
            None,
        )),
        "self_attn.v_proj.bias" if !gemma && cfg.arch != Arch::Phi3 => {
            plain("attn_v.bias", vec![kv_rows])
        }
        "mlp.gate_up_proj.weight" if cfg.arch == Arch::Phi3 => {
            // llama.cpp splits the fused gate and up halves at run time.
            plain("ffn_up.weight", vec![2 * cfg.ff, h])
        }
        "mlp.gate_proj.weight" if cfg.n_expert == 0 && cfg.arch != Arch::Phi3 => {
            plain("ffn_gate.weight", vec![cfg.ff, h])
        }
        "mlp.up_proj.weight" if cfg.n_expert == 0 && cfg.arch != Arch::Phi3 => {
            plain("ffn_up.weight", vec![cfg.ff, h])
        }
        "mlp.down_proj.weight" if cfg.n_expert == 0 => plain("ffn_down.weight", vec![h, cfg.ff]),
        // Per-head RMS norms of queries and keys, one weight per head dimension.
        "self_attn.q_norm.weight" if cfg.arch.has_qk_norm() => {
            plain("attn_q_norm.weight", vec![hd])
        }
        "self_attn.k_norm.weight" if cfg.arch.has_qk_norm() => {
            plain("attn_k_norm.weight", vec![hd])
        }
        _ => None,
    }
}

/// GGUF names that must be present for the model to load.
/// Yields `(gguf name, hf name)` pairs; `prefix` is the decoder's prefix in
/// the checkpoint (`"model."`, or `""` for a bare decoder). `lm_head` is
/// required only when `need_output` (untied, and not an embedding model,
/// whose LM head llama.cpp neither needs nor checks for). An expert is
/// named `GGUF#E` (part `E` of the merged tensor `GGUF`).
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
    if need_output && cfg.arch != Arch::Gemma2 {
        global.push(("output.weight".to_owned(), "lm_head.weight".to_owned()));
    }
    let (per_layer, experts) = layer_requirements(cfg);
    let n_expert = cfg.n_expert;
    // Lazy, so that an absurd `num_hidden_layers` costs nothing before the
    // first missing tensor stops the caller.
    let layers = (0..cfg.n_layer).flat_map(move |i| {
        let dense = per_layer
            .clone()
            .into_iter()
            .map(move |(g, h)| (format!("blk.{i}.{g}"), format!("{prefix}layers.{i}.{h}")));
        let moe = experts.clone().into_iter().flat_map(move |(g, h)| {
            (0..n_expert).map(move |e| {
                (
                    format!("blk.{i}.{g}#{e}"),
                    format!("{prefix}layers.{i}.{}", h.replace("{e}", &e.to_string())),
                )
            })
        });
        dense.chain(moe)
    });
    global.into_iter().chain(layers)
}

/// A layer's required `(GGUF suffix, checkpoint suffix)` pairs, and its per-expert ones
/// (checkpoint suffix with `{e}` for the expert).
type LayerRequirements = (
    Vec<(&'static str, String)>,
    Vec<(&'static str, &'static str)>,
);

/// [`required_tensors`] of one layer.
fn layer_requirements(cfg: &ModelConfig) -> LayerRequirements {
    if cfg.arch == Arch::GptOss {
        let per_layer = gptoss::required_layer_tensors(cfg);
        return (
            per_layer
                .into_iter()
                .map(|(g, h)| (g, h.to_owned()))
                .collect(),
            Vec::new(),
        );
    }
    let mut per_layer: Vec<(&str, String)> = vec![
        ("attn_norm.weight", "input_layernorm.weight".into()),
        ("attn_output.weight", "self_attn.o_proj.weight".into()),
    ];
    let mut add = |g: &'static str, h: &str| per_layer.push((g, h.to_owned()));
    match cfg.arch {
        Arch::Phi3 => {
            add("attn_qkv.weight", "self_attn.qkv_proj.weight");
            add("ffn_up.weight", "mlp.gate_up_proj.weight");
        }
        _ => {
            add("attn_q.weight", "self_attn.q_proj.weight");
            add("attn_k.weight", "self_attn.k_proj.weight");
            add("attn_v.weight", "self_attn.v_proj.weight");
            if cfg.n_expert == 0 {
                add("ffn_gate.weight", "mlp.gate_proj.weight");
                add("ffn_up.weight", "mlp.up_proj.weight");
            }
        }
    }
    if cfg.n_expert == 0 {
        add("ffn_down.weight", "mlp.down_proj.weight");
    }
    if matches!(cfg.arch, Arch::Gemma2 | Arch::Gemma3) {
        add(
            "post_attention_norm.weight",
            "post_attention_layernorm.weight",
        );
        add("ffn_norm.weight", "pre_feedforward_layernorm.weight");
        add("post_ffw_norm.weight", "post_feedforward_layernorm.weight");
    } else {
        add("ffn_norm.weight", "post_attention_layernorm.weight");
    }
    if cfg.arch.has_qk_norm() {
        add("attn_q_norm.weight", "self_attn.q_norm.weight");
        add("attn_k_norm.weight", "self_attn.k_norm.weight");
    }
    let biases = match cfg.arch {
        Arch::Qwen2 | Arch::Qwen2Moe => true,
        Arch::Qwen3 | Arch::Qwen3Moe => cfg.attention_bias,
        _ => false,
    };
    if biases {
        add("attn_q.bias", "self_attn.q_proj.bias");
        add("attn_k.bias", "self_attn.k_proj.bias");
        add("attn_v.bias", "self_attn.v_proj.bias");
    }
    let mut experts: Vec<(&str, &str)> = Vec::new();
    if cfg.n_expert > 0 {
        if cfg.arch == Arch::Llama {
            add("ffn_gate_inp.weight", "block_sparse_moe.gate.weight");
            experts = vec![
                (
                    "ffn_gate_exps.weight",
                    "block_sparse_moe.experts.{e}.w1.weight",
                ),
                (
                    "ffn_up_exps.weight",
                    "block_sparse_moe.experts.{e}.w3.weight",
                ),
                (
                    "ffn_down_exps.weight",
                    "block_sparse_moe.experts.{e}.w2.weight",
                ),
            ];
        } else {
            add("ffn_gate_inp.weight", "mlp.gate.weight");
            experts = vec![
                ("ffn_gate_exps.weight", "mlp.experts.{e}.gate_proj.weight"),
                ("ffn_up_exps.weight", "mlp.experts.{e}.up_proj.weight"),
                ("ffn_down_exps.weight", "mlp.experts.{e}.down_proj.weight"),
            ];
            if cfg.shared_expert_ff.is_some() {
                add(
                    "ffn_gate_shexp.weight",
                    "mlp.shared_expert.gate_proj.weight",
                );
                add("ffn_up_shexp.weight", "mlp.shared_expert.up_proj.weight");
                add(
                    "ffn_down_shexp.weight",
                    "mlp.shared_expert.down_proj.weight",
                );
                add("ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight");
            }
        }
    }
    (per_layer, experts)
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
