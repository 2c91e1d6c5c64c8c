//! Phi-3, Phi-3.5 and Phi-4 (`Phi3ForCausalLM`, GGUF architecture `phi3`):
//! the keys llama.cpp's `Phi3MiniModel` writes and the longrope factor
//! tensors.
//!
//! The fused `qkv_proj` and `gate_up_proj` weights are stored as they are
//! (`attn_qkv`, and `ffn_up` with twice the feed-forward rows): llama.cpp
//! splits them at run time. Longrope checkpoints (the 128K-context models)
//! get `rope_factors_long.weight`/`rope_factors_short.weight` (`rope
//! dimensions / 2` values each) and `phi3.rope.scaling.attn_factor`; no
//! `rope.scaling.type` is written, as llama.cpp's converter does not.

use serde_json::Value;

use super::ModelConfig;
use crate::error::{ConvertError, Result};
use crate::gguf::MetaValue;

const F: &str = "config.json";

/// The rope parameters object: `rope_parameters`, else `rope_scaling`.
fn rope_params(raw: &Value) -> Option<&Value> {
    raw.get("rope_parameters")
        .filter(|v| v.is_object())
        .or_else(|| raw.get("rope_scaling").filter(|v| v.is_object()))
}

fn param<'a>(raw: &'a Value, key: &str) -> Option<&'a Value> {
    rope_params(raw)
        .and_then(|p| p.get(key))
        .filter(|v| !v.is_null())
        .or_else(|| raw.get(key).filter(|v| !v.is_null()))
}

/// What the Phi-3 converter derives from config.json.
#[derive(Debug, Clone, PartialEq)]
pub struct Phi3Params {
    /// `n_positions`, else `max_position_embeddings`.
    pub context: u64,
    /// `original_max_position_embeddings`.
    pub original_context: u64,
    /// `int(partial_rotary_factor · hidden) / heads`.
    pub rope_dims: usize,
    /// `rope_theta`.
    pub rope_theta: f64,
    /// Longrope: attention factor and the long/short factors.
    pub longrope: Option<(f64, Vec<f32>, Vec<f32>)>,
}

fn factors(v: Option<&Value>, name: &str) -> Result<Option<Vec<f32>>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let list = v
        .as_array()
        .ok_or_else(|| ConvertError::json(F, format!("`{name}` must be a list of numbers")))?;
    list.iter()
        .map(|x| {
            x.as_f64()
                .map(|x| x as f32)
                .ok_or_else(|| ConvertError::json(F, format!("`{name}` must be a list of numbers")))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Reads and checks the Phi-3 parameters.
pub fn params(cfg: &ModelConfig) -> Result<Phi3Params> {
    let raw = &cfg.raw;
    let context = ["n_positions", "max_position_embeddings"]
        .iter()
        .find_map(|k| raw.get(*k).and_then(Value::as_u64))
        .ok_or_else(|| ConvertError::json(F, "missing `max_position_embeddings`"))?;
    let original_context = param(raw, "original_max_position_embeddings")
        .and_then(Value::as_u64)
        .filter(|v| *v > 0)
        .ok_or_else(|| ConvertError::json(F, "missing `original_max_position_embeddings`"))?;
    let rope_theta = param(raw, "rope_theta")
        .and_then(Value::as_f64)
        .ok_or_else(|| ConvertError::json(F, "missing `rope_theta`"))?;
    let pct = ["partial_rotary_factor", "rope_pct", "rope_percent"]
        .iter()
        .find_map(|k| param(raw, k).and_then(Value::as_f64))
        .unwrap_or(1.0);
    let rope_dims = (pct * cfg.hidden as f64) as usize / cfg.n_head;
    if rope_dims == 0 || !rope_dims.is_multiple_of(2) || rope_dims > cfg.head_dim() {
        return Err(ConvertError::json(
            F,
            "the rotary dimension must be even and at most the head size",
        ));
    }
    let long = factors(
        rope_params(raw).and_then(|p| p.get("long_factor")),
        "long_factor",
    )?;
    let short = factors(
        rope_params(raw).and_then(|p| p.get("short_factor")),
        "short_factor",
    )?;
    let longrope = match long.filter(|l| !l.is_empty()) {
        None => None,
        Some(long) => {
            let kind = rope_params(raw)
                .and_then(|p| p.get("rope_type").or_else(|| p.get("type")))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase();
            let scale = context as f64 / original_context as f64;
            let attn_factor = match kind.as_str() {
                "su" | "longrope" if scale > 1.0 => {
                    (1.0 + scale.ln() / (original_context as f64).ln()).sqrt()
                }
                "yarn" if scale > 1.0 => 0.1 * scale.ln() + 1.0,
                "su" | "longrope" | "yarn" => 1.0,
                "" => return Err(ConvertError::json(F, "rope scaling without a `rope_type`")),
                other => {
                    return Err(ConvertError::UnsupportedVariant(format!(
                        "Phi-3 rope scaling `{other}`"
                    )));
                }
            };
            let short =
                short.ok_or_else(|| ConvertError::json(F, "longrope without `short_factor`"))?;
            if long.len() != short.len() || long.len() * 2 != rope_dims {
                return Err(ConvertError::json(
                    F,
                    format!(
                        "the long and short rope factors must have {} values each (got {} and {})",
                        rope_dims / 2,
                        long.len(),
                        short.len()
                    ),
                ));
            }
            Some((attn_factor, long, short))
        }
    };
    Ok(Phi3Params {
        context,
        original_context,
        rope_dims,
        rope_theta,
        longrope,
    })
}

/// `phi3.*` keys.
pub fn metadata(cfg: &ModelConfig) -> Vec<(String, MetaValue)> {
    let Ok(p) = params(cfg) else {
        // Checked by `params` before any metadata is asked for.
        return Vec::new();
    };
    let a = "phi3";
    let mut kv = Vec::new();
    let mut u = |k: &str, v: u64| kv.push((format!("{a}.{k}"), MetaValue::U32(v as u32)));
    u("context_length", p.context);
    u("rope.scaling.original_context_length", p.original_context);
    u("embedding_length", cfg.hidden as u64);
    u("feed_forward_length", cfg.ff as u64);
    u("block_count", cfg.n_layer as u64);
    u("attention.head_count", cfg.n_head as u64);
    u("attention.head_count_kv", cfg.n_head_kv as u64);
    kv.push((
        format!("{a}.attention.layer_norm_rms_epsilon"),
        MetaValue::F32(cfg.rms_eps.unwrap_or(0.0) as f32),
    ));
    kv.push((
        format!("{a}.rope.dimension_count"),
        MetaValue::U32(p.rope_dims as u32),
    ));
    kv.push((
        format!("{a}.rope.freq_base"),
        MetaValue::F32(p.rope_theta as f32),
    ));
    // Zero tells Phi-4 (no sliding window) from the Phi-3 models.
    let window = cfg
        .raw
        .get("sliding_window")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    kv.push((
        format!("{a}.attention.sliding_window"),
        MetaValue::U32(window as u32),
    ));
    if let Some((attn_factor, _, _)) = &p.longrope {
        kv.push((
            format!("{a}.rope.scaling.attn_factor"),
            MetaValue::F32(*attn_factor as f32),
        ));
    }
    kv
}

/// Checks what llama.cpp's Phi-3 converter requires of config.json.
pub fn check(cfg: &ModelConfig) -> Result<()> {
    if !cfg.n_head_kv_explicit {
        return Err(ConvertError::json(F, "missing `num_key_value_heads`"));
    }
    if cfg.rms_eps.is_none() {
        return Err(ConvertError::json(F, "missing `rms_norm_eps`"));
    }
    params(cfg).map(drop)
}
