//! Gemma 2 and Gemma 3 (text): the keys llama.cpp's `Gemma2Model` and
//! `Gemma3Model` write, and Gemma 3's defaults for keys its configs omit.
//!
//! Tensor transforms (in [`super::map_tensor`]): every norm weight `w`
//! becomes `1 + w` (Gemma's RMS norm multiplies by `1 + w`), Gemma 2's
//! `lm_head` is dropped (llama.cpp ties the output to the embedding), and
//! Gemma 3 keeps only the embedding rows its tokenizer can produce. A
//! `Gemma3ForConditionalGeneration` checkpoint converts to its language
//! model; the vision tower and projector are skipped.
//!
//! Neither converter writes `query_pre_attn_scalar`: llama.cpp scales
//! queries by `1/sqrt(head_dim)`, or `1/sqrt(hidden/heads)` for the 27B
//! models, which is what their configs say.

use serde_json::Value;

use super::ModelConfig;
use crate::error::{ConvertError, Result};
use crate::gguf::MetaValue;

/// Gemma 3's configs (notably the `text_config` of the multimodal ones)
/// leave out keys whose transformers defaults llama.cpp's converter assumes.
pub(crate) fn gemma3_defaults(raw: &mut Value) {
    let Value::Object(m) = raw else { return };
    for (k, v) in [
        ("num_attention_heads", Value::from(8)),
        ("num_key_value_heads", Value::from(4)),
        ("head_dim", Value::from(256)),
        ("rms_norm_eps", Value::from(1e-6)),
        ("max_position_embeddings", Value::from(131072)),
    ] {
        if m.get(k).is_none_or(Value::is_null) {
            m.insert(k.to_owned(), v);
        }
    }
}

fn u(kv: &mut Vec<(String, MetaValue)>, a: &str, k: &str, v: usize) {
    kv.push((format!("{a}.{k}"), MetaValue::U32(v as u32)));
}

fn f(kv: &mut Vec<(String, MetaValue)>, a: &str, k: &str, v: f64) {
    kv.push((format!("{a}.{k}"), MetaValue::F32(v as f32)));
}

fn num(raw: &Value, key: &str) -> Option<f64> {
    raw.get(key).and_then(Value::as_f64)
}

/// `gemma2.*` keys: the basic sizes, both soft-capping values and the
/// sliding window; no rope keys (llama.cpp's default base 10000 is Gemma 2's).
pub fn gemma2_metadata(cfg: &ModelConfig) -> Vec<(String, MetaValue)> {
    let a = "gemma2";
    let mut kv = Vec::new();
    if let Some(c) = cfg.context_length {
        u(&mut kv, a, "context_length", c as usize);
    }
    u(&mut kv, a, "embedding_length", cfg.hidden);
    u(&mut kv, a, "block_count", cfg.n_layer);
    u(&mut kv, a, "feed_forward_length", cfg.ff);
    u(&mut kv, a, "attention.head_count", cfg.n_head);
    u(&mut kv, a, "attention.head_count_kv", cfg.n_head_kv);
    if let Some(e) = cfg.rms_eps {
        f(&mut kv, a, "attention.layer_norm_rms_epsilon", e);
    }
    u(&mut kv, a, "attention.key_length", cfg.head_dim());
    u(&mut kv, a, "attention.value_length", cfg.head_dim());
    for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
        if let Some(v) = num(&cfg.raw, key) {
            f(&mut kv, a, key, v);
        }
    }
    if let Some(w) = cfg.raw.get("sliding_window").and_then(Value::as_u64) {
        u(&mut kv, a, "attention.sliding_window", w as usize);
    }
    kv
}

/// Checks what llama.cpp's Gemma 2 converter requires of config.json.
pub fn gemma2_check(cfg: &ModelConfig) -> Result<()> {
    for key in [
        "max_position_embeddings",
        "rms_norm_eps",
        "head_dim",
        "attn_logit_softcapping",
        "final_logit_softcapping",
        "sliding_window",
    ] {
        if cfg.raw.get(key).is_none_or(Value::is_null) {
            return Err(ConvertError::json(
                "config.json",
                format!("missing `{key}`"),
            ));
        }
    }
    Ok(())
}

/// Checks what llama.cpp's Gemma 3 converter requires of config.json.
pub fn gemma3_check(cfg: &ModelConfig) -> Result<()> {
    if cfg
        .raw
        .get("attn_logit_softcapping")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ConvertError::UnsupportedVariant(
            "Gemma 3 with attention logit soft-capping (llama.cpp's converter rejects it)".into(),
        ));
    }
    if sliding_window_used(&cfg.raw)
        && cfg
            .raw
            .get("sliding_window")
            .and_then(Value::as_u64)
            .is_none()
    {
        return Err(ConvertError::json(
            "config.json",
            "missing `sliding_window`",
        ));
    }
    Ok(())
}

fn sliding_window_used(raw: &Value) -> bool {
    raw.get("sliding_window_pattern").and_then(Value::as_i64) != Some(1)
}

/// The rope parameters of the global (full-attention) layers and the local
/// base frequency, from transformers' `rope_parameters` (per layer type) or
/// the older `rope_scaling` + `rope_theta` + `rope_local_base_freq`.
fn gemma3_rope(raw: &Value) -> (Option<Value>, Option<f64>, Option<f64>) {
    let params = raw
        .get("rope_parameters")
        .filter(|v| v.is_object())
        .or_else(|| raw.get("rope_scaling").filter(|v| v.is_object()));
    if let Some(p) = params
        && (p.get("full_attention").is_some() || p.get("sliding_attention").is_some())
    {
        let full = p.get("full_attention").cloned();
        let theta = full.as_ref().and_then(|f| num(f, "rope_theta"));
        let local = p
            .get("sliding_attention")
            .and_then(|s| num(s, "rope_theta"));
        return (full, theta, local);
    }
    let theta = params.and_then(|p| num(p, "rope_theta")).or_else(|| {
        [
            "global_rope_theta",
            "rope_global_theta",
            "rope_theta_global",
            "rope_theta",
            "rotary_emb_base",
        ]
        .iter()
        .find_map(|k| num(raw, k))
    });
    let local = [
        "local_rope_theta",
        "rope_local_theta",
        "rope_theta_local",
        "swa_rope_theta",
        "rope_local_base_freq",
    ]
    .iter()
    .find_map(|k| num(raw, k));
    (params.cloned(), theta, local)
}

/// `gemma3.*` keys: the common ones, the global rope base (default 1e6) and
/// the local one (`rope.freq_base_swa`), linear rope scaling of the global
/// layers, the final soft-capping and the sliding window (llama.cpp applies
/// its fixed pattern of five local layers to one global layer).
pub fn gemma3_metadata(cfg: &ModelConfig) -> Vec<(String, MetaValue)> {
    let a = "gemma3";
    let raw = &cfg.raw;
    let mut kv = Vec::new();
    u(&mut kv, a, "block_count", cfg.n_layer);
    if let Some(c) = cfg.context_length {
        u(&mut kv, a, "context_length", c as usize);
    }
    u(&mut kv, a, "embedding_length", cfg.hidden);
    u(&mut kv, a, "feed_forward_length", cfg.ff);
    u(&mut kv, a, "attention.head_count", cfg.n_head);
    u(&mut kv, a, "attention.head_count_kv", cfg.n_head_kv);
    let (scaling, theta, local) = gemma3_rope(raw);
    if let Some(s) = scaling {
        let kind = s
            .get("rope_type")
            .or_else(|| s.get("type"))
            .and_then(Value::as_str);
        if let (Some("linear"), Some(factor)) = (kind, num(&s, "factor")) {
            kv.push((
                format!("{a}.rope.scaling.type"),
                MetaValue::Str("linear".into()),
            ));
            f(&mut kv, a, "rope.scaling.factor", factor);
        }
    }
    f(&mut kv, a, "rope.freq_base", theta.unwrap_or(1_000_000.0));
    if let Some(l) = local {
        f(&mut kv, a, "rope.freq_base_swa", l);
    }
    f(
        &mut kv,
        a,
        "attention.layer_norm_rms_epsilon",
        cfg.rms_eps.unwrap_or(1e-6),
    );
    u(&mut kv, a, "attention.key_length", cfg.head_dim());
    u(&mut kv, a, "attention.value_length", cfg.head_dim());
    if let Some(c) = num(raw, "final_logit_softcapping").filter(|c| *c != 0.0) {
        f(&mut kv, a, "final_logit_softcapping", c);
    }
    if sliding_window_used(raw)
        && let Some(w) = raw.get("sliding_window").and_then(Value::as_u64)
    {
        u(&mut kv, a, "attention.sliding_window", w as usize);
    }
    kv
}

/// Gemma 3's vocabulary size and embedding rows, as llama.cpp's converter
/// takes them: with `tokenizer.model`, `vocab_size` (or the number of pieces
/// when config.json has none); with only `tokenizer.json`, its vocabulary
/// plus its added tokens. The embedding keeps that many rows (the 4B–27B
/// checkpoints carry 64 more, for image tokens).
pub(crate) fn fix_vocab(src: &crate::SourceFiles, cfg: &mut ModelConfig) -> Result<()> {
    let rows = if let Some(path) = src.path("tokenizer.model") {
        let bytes = std::fs::read(path).map_err(|e| ConvertError::io("read", path, e))?;
        let pieces = crate::tokenizer::parse_sentencepiece(&bytes)?.len();
        if cfg.vocab_from_tokenizer {
            cfg.vocab_size = pieces;
        }
        cfg.vocab_size
    } else if let Some(path) = src.path("tokenizer.json") {
        let bytes = std::fs::read(path).map_err(|e| ConvertError::io("read", path, e))?;
        let tj: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ConvertError::json("tokenizer.json", e.to_string()))?;
        let len = |v: Option<&Value>| {
            v.map_or(0, |v| {
                v.as_object()
                    .map_or_else(|| v.as_array().map_or(0, Vec::len), |o| o.len())
            })
        };
        let n = len(tj.pointer("/model/vocab")) + len(tj.get("added_tokens"));
        if cfg.vocab_from_tokenizer {
            cfg.vocab_size = len(tj.pointer("/model/vocab"));
        }
        n
    } else {
        return Err(ConvertError::Tokenizer(
            "neither tokenizer.model nor tokenizer.json is present".into(),
        ));
    };
    if rows == 0 {
        return Err(ConvertError::Tokenizer("the vocabulary is empty".into()));
    }
    cfg.embed_rows = rows;
    Ok(())
}
