//! Qwen3 (dense): llama.cpp's `Qwen3Model` is its `Qwen2Model` with another
//! architecture name, so the keys are Qwen2's (the common ones, with
//! `attention.key_length`/`value_length` from config `head_dim`, which Qwen3
//! sets to something other than `hidden_size / num_attention_heads`, and yarn
//! scaling). The tensors differ: per-layer `attn_q_norm`/`attn_k_norm`
//! (length `head_dim`) and, unless `attention_bias` is set, no q/k/v biases.
//! No Q/K permutation: llama.cpp runs Qwen3 with NeoX rope.

use super::ModelConfig;
use crate::gguf::MetaValue;

/// Whether the checkpoint is a Qwen3 reranker, by the hints llama.cpp's
/// converter looks for: a `# Qwen3-Reranker` (or `# Qwen3-VL-Reranker`)
/// heading in README.md, or the name in `_name_or_path`/`model_type`.
/// llama.cpp turns those into a ranking model (a yes/no `cls.output` head,
/// rank pooling, its own chat template), which we do not.
pub fn is_reranker(cfg: &ModelConfig, readme: Option<&str>) -> bool {
    const NAMES: [&str; 2] = ["qwen3-reranker", "qwen3-vl-reranker"];
    if let Some(text) = readme {
        let text = text.to_lowercase();
        if NAMES.iter().any(|n| text.contains(&format!("# {n}"))) {
            return true;
        }
    }
    ["_name_or_path", "model_type"].iter().any(|k| {
        cfg.raw
            .get(*k)
            .and_then(serde_json::Value::as_str)
            .is_some_and(|v| {
                let v = v.to_lowercase();
                NAMES.iter().any(|n| v.contains(n))
            })
    })
}

/// `qwen3.*` keys.
pub fn metadata(cfg: &ModelConfig) -> Vec<(String, MetaValue)> {
    let mut kv = cfg.base_metadata();
    cfg.rope_scaling_metadata(&mut kv);
    kv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{Arch, map_tensor, required_tensors};

    /// The hyper-parameters of Qwen3-0.6B's config.json (rope_theta is an
    /// integer there, rope_scaling null).
    const QWEN3_0_6B: &str = r#"{
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "bos_token_id": 151643,
        "eos_token_id": 151645, "head_dim": 128, "hidden_size": 1024, "intermediate_size": 3072,
        "max_position_embeddings": 40960, "model_type": "qwen3", "num_attention_heads": 16,
        "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
        "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
        "tie_word_embeddings": true, "torch_dtype": "bfloat16", "vocab_size": 151936
    }"#;

    fn keys(cfg: &ModelConfig) -> Vec<(String, MetaValue)> {
        cfg.metadata()
    }

    #[test]
    fn metadata_of_qwen3_0_6b() {
        let cfg = ModelConfig::parse(QWEN3_0_6B.as_bytes()).unwrap();
        assert_eq!(cfg.arch, Arch::Qwen3);
        let kv = keys(&cfg);
        let get = |k: &str| {
            kv.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("missing {k}"))
        };
        for (k, v) in [
            ("qwen3.context_length", 40960),
            ("qwen3.embedding_length", 1024),
            ("qwen3.feed_forward_length", 3072),
            ("qwen3.block_count", 28),
            ("qwen3.attention.head_count", 16),
            ("qwen3.attention.head_count_kv", 8),
            ("qwen3.attention.key_length", 128),
            ("qwen3.attention.value_length", 128),
        ] {
            assert_eq!(get(k), MetaValue::U32(v), "{k}");
        }
        assert_eq!(get("qwen3.rope.freq_base"), MetaValue::F32(1e6));
        assert_eq!(
            get("qwen3.attention.layer_norm_rms_epsilon"),
            MetaValue::F32(1e-6)
        );
        // Like Qwen2: no vocab_size, no rope.dimension_count, no scaling keys.
        assert!(
            kv.iter().all(|(k, _)| k.starts_with("qwen3.")
                && !k.contains("vocab_size")
                && !k.contains("dimension_count")
                && !k.contains("scaling")),
            "{kv:?}"
        );
        assert_eq!(kv.len(), 10);
    }

    #[test]
    fn shapes_use_head_dim() {
        let cfg = ModelConfig::parse(QWEN3_0_6B.as_bytes()).unwrap();
        let shape = |hf: &str| {
            let m = map_tensor(&cfg, hf).unwrap().unwrap();
            assert_eq!(m.permute_heads, None, "{hf}: NeoX rope, no permutation");
            (m.gguf, m.shape)
        };
        let l = "model.layers.27.";
        // 16 heads × 128 = 2048 query rows for a hidden size of 1024.
        assert_eq!(
            shape(&format!("{l}self_attn.q_proj.weight")),
            ("blk.27.attn_q.weight".into(), vec![2048, 1024])
        );
        assert_eq!(
            shape(&format!("{l}self_attn.k_proj.weight")).1,
            vec![1024, 1024]
        );
        assert_eq!(
            shape(&format!("{l}self_attn.o_proj.weight")).1,
            vec![1024, 2048]
        );
        assert_eq!(
            shape(&format!("{l}self_attn.q_norm.weight")),
            ("blk.27.attn_q_norm.weight".into(), vec![128])
        );
        assert_eq!(
            shape(&format!("{l}self_attn.k_norm.weight")),
            ("blk.27.attn_k_norm.weight".into(), vec![128])
        );
        // Tied: no lm_head required; q/k norms required; no biases required.
        let req: Vec<String> = required_tensors(&cfg, "model.", !cfg.tie_embeddings)
            .map(|(g, _)| g)
            .collect();
        assert!(!req.iter().any(|g| g == "output.weight"));
        assert!(req.iter().any(|g| g == "blk.0.attn_q_norm.weight"));
        assert!(req.iter().any(|g| g == "blk.27.attn_k_norm.weight"));
        assert!(!req.iter().any(|g| g.ends_with(".bias")));
        assert_eq!(req.len(), 2 + 28 * 11);
    }

    #[test]
    fn rerankers_are_recognized() {
        let cfg = ModelConfig::parse(QWEN3_0_6B.as_bytes()).unwrap();
        assert!(!is_reranker(&cfg, None));
        assert!(!is_reranker(
            &cfg,
            Some("# Qwen3-0.6B\n\nA reranker is ...")
        ));
        assert!(is_reranker(
            &cfg,
            Some("---\nlicense: apache-2.0\n---\n# Qwen3-Reranker-0.6B\n")
        ));
        let mut v: serde_json::Value = serde_json::from_str(QWEN3_0_6B).unwrap();
        v["_name_or_path"] = "Qwen/Qwen3-Reranker-4B".into();
        let cfg = ModelConfig::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(is_reranker(&cfg, None));
    }

    #[test]
    fn yarn_scaling_keys() {
        let mut v: serde_json::Value = serde_json::from_str(QWEN3_0_6B).unwrap();
        // Qwen3's documented long-context setup, plus the optional yarn fields.
        v["rope_scaling"] = serde_json::json!({
            "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
            "beta_fast": 32.0, "attn_factor": 1.5
        });
        let cfg = ModelConfig::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        let kv = keys(&cfg);
        let scaling: Vec<_> = kv.iter().filter(|(k, _)| k.contains("scaling")).collect();
        assert_eq!(
            scaling,
            vec![
                &(
                    "qwen3.rope.scaling.type".to_owned(),
                    MetaValue::Str("yarn".into())
                ),
                &("qwen3.rope.scaling.factor".to_owned(), MetaValue::F32(4.0)),
                &(
                    "qwen3.rope.scaling.original_context_length".to_owned(),
                    MetaValue::U32(32768)
                ),
                &(
                    "qwen3.rope.scaling.yarn_attn_factor".to_owned(),
                    MetaValue::F32(1.5)
                ),
                &(
                    "qwen3.rope.scaling.yarn_beta_fast".to_owned(),
                    MetaValue::F32(32.0)
                ),
            ]
        );
    }
}
