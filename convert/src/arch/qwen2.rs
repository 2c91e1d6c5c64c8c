//! Qwen2: only the common `TextModel` keys (no `vocab_size`, no
//! `rope.dimension_count`), yarn scaling, no Q/K permutation (llama.cpp runs
//! Qwen2 with NeoX rope), and q/k/v biases.

use super::ModelConfig;
use crate::gguf::MetaValue;

/// `qwen2.*` keys.
pub fn metadata(cfg: &ModelConfig) -> Vec<(String, MetaValue)> {
    let mut kv = cfg.base_metadata();
    cfg.rope_scaling_metadata(&mut kv);
    kv
}
