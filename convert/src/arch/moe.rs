//! Mixtures of experts: Mixtral (GGUF architecture `llama`), Qwen2-MoE
//! (`qwen2moe`) and Qwen3-MoE (`qwen3moe`).
//!
//! Each layer's experts are separate checkpoint tensors
//! (`…experts.E.w1.weight`, `…experts.E.gate_proj.weight`); llama.cpp wants
//! them merged into one 3-D tensor per projection, `[n_expert, rows, cols]`
//! (`ffn_gate_exps`, `ffn_up_exps`, `ffn_down_exps`). The converter writes
//! the merged tensor by reading one expert's rows after the other straight
//! from the memory-mapped checkpoint, so no layer's experts are ever held
//! together. The router becomes `ffn_gate_inp` (kept F32), Qwen2-MoE's
//! shared expert `ffn_{gate,up,down}_shexp` and its gate
//! `ffn_gate_inp_shexp`.

use super::ModelConfig;
use crate::gguf::MetaValue;

/// `qwen2moe.*` / `qwen3moe.*` keys: the common ones (with the expert
/// counts), yarn scaling, and the routed and shared experts' widths.
pub fn qwen_metadata(cfg: &ModelConfig) -> Vec<(String, MetaValue)> {
    let a = cfg.arch.name();
    let mut kv = cfg.base_metadata();
    cfg.rope_scaling_metadata(&mut kv);
    if cfg.raw.get("moe_intermediate_size").is_some() {
        kv.push((
            format!("{a}.expert_feed_forward_length"),
            MetaValue::U32(cfg.expert_ff as u32),
        ));
    }
    if let Some(s) = cfg.shared_expert_ff {
        kv.push((
            format!("{a}.expert_shared_feed_forward_length"),
            MetaValue::U32(s as u32),
        ));
    }
    kv
}
