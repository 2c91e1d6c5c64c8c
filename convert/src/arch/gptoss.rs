//! GPT-OSS (`GptOssForCausalLM` → GGUF architecture `gpt-oss`), as llama.cpp's
//! `GptOssModel` converts it.
//!
//! Keys: the common ones (with `head_dim` as key/value length, the expert counts and yarn
//! rope scaling), then `attention.sliding_window` and `expert_feed_forward_length`
//! (= `intermediate_size`). llama.cpp's graph hard-codes the rest of the model: every other
//! layer (from the first) attends within the window, the experts' SwiGLU is clamped at 7 with
//! α = 1.702, and the router picks the top k of its biased logits and softmaxes those.
//! Configs that say otherwise are refused ([`check`]).
//!
//! Tensors: attention with biases and per-head `sinks` (→ `attn_sinks.weight`), the
//! post-attention norm as `post_attention_norm`, the router (`mlp.router` → `ffn_gate_inp`,
//! weight and bias). The experts are whole 3-D tensors per layer, with gate and up
//! interleaved row by row in `gate_up_proj` (even rows gate, odd rows up):
//! - as released, MXFP4: `*_blocks` (`u8`, 16 bytes per 32 values) and `*_scales` (one E8M0
//!   byte per block), which become ggml `MXFP4` tensors by moving nibbles
//!   ([`crate::quant::mxfp4::repack_hf_block`]) whatever the output type, never requantized;
//! - dequantized by transformers, `gate_up_proj` `[E, hidden, 2·ff]` and `down_proj`
//!   `[E, ff, hidden]` (input-major), which are transposed and typed like any weight.
//!
//! The expert biases are split the same way (`ffn_{gate,up,down}_exps.bias`, kept F32).

use serde_json::Value;

use super::ModelConfig;
use crate::error::{ConvertError, Result};
use crate::gguf::MetaValue;
use crate::safetensors::{StDtype, TensorRef};

/// llama.cpp's `gpt-oss` graph uses these SwiGLU constants whatever config.json says.
const SWIGLU_LIMIT: f64 = 7.0;

/// `gpt-oss.*` keys.
pub fn metadata(cfg: &ModelConfig) -> Vec<(String, MetaValue)> {
    let a = cfg.arch.name();
    let mut kv = cfg.base_metadata();
    cfg.rope_scaling_metadata(&mut kv);
    if let Some(w) = cfg.raw.get("sliding_window").and_then(Value::as_u64) {
        kv.push((
            format!("{a}.attention.sliding_window"),
            MetaValue::U32(w as u32),
        ));
    }
    kv.push((
        format!("{a}.expert_feed_forward_length"),
        MetaValue::U32(cfg.ff as u32),
    ));
    kv
}

/// Refuses what llama.cpp's converter or graph would get wrong or reject.
pub fn check(cfg: &ModelConfig) -> Result<()> {
    const F: &str = "config.json";
    if cfg
        .raw
        .get("sliding_window")
        .and_then(Value::as_u64)
        .is_none()
    {
        return Err(ConvertError::json(F, "missing `sliding_window`"));
    }
    if cfg.rms_eps.is_none() {
        return Err(ConvertError::json(F, "missing `rms_norm_eps`"));
    }
    if cfg.n_expert_used.is_none_or(|k| k == 0 || k > cfg.n_expert) {
        return Err(ConvertError::json(
            F,
            "`num_experts_per_tok` must be between 1 and `num_local_experts`",
        ));
    }
    let variant = |what: String| Err(ConvertError::UnsupportedVariant(what));
    if let Some(limit) = cfg.raw.get("swiglu_limit").and_then(Value::as_f64)
        && limit != SWIGLU_LIMIT
    {
        return variant(format!(
            "GPT-OSS with `swiglu_limit` {limit} (llama.cpp's gpt-oss graph clamps at 7)"
        ));
    }
    if let Some(types) = cfg.raw.get("layer_types").and_then(Value::as_array) {
        let alternating = types.iter().enumerate().all(|(i, t)| {
            t.as_str()
                == Some(if i % 2 == 0 {
                    "sliding_attention"
                } else {
                    "full_attention"
                })
        });
        if !alternating {
            return variant(
                "GPT-OSS whose `layer_types` do not alternate sliding and full attention from \
                 the first layer (llama.cpp's gpt-oss graph assumes that pattern)"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Whether config.json declares the MXFP4 checkpoint format (`quantization_config.quant_method`),
/// which makes llama.cpp's converter label F32/F16/BF16 outputs `MOSTLY_MXFP4_MOE`.
pub fn declares_mxfp4(cfg: &ModelConfig) -> bool {
    cfg.raw
        .get("quantization_config")
        .and_then(|q| q.get("quant_method"))
        .and_then(Value::as_str)
        == Some("mxfp4")
}

/// The per-layer tensors that map one to one (suffix after `layers.N.`): GGUF suffix and shape.
pub fn layer_tensor(cfg: &ModelConfig, suffix: &str) -> Option<(&'static str, Vec<usize>)> {
    let (h, hd, ne) = (cfg.hidden, cfg.head_dim(), cfg.n_expert);
    let q_rows = cfg.n_head.saturating_mul(hd);
    let kv_rows = cfg.n_head_kv.saturating_mul(hd);
    Some(match suffix {
        "input_layernorm.weight" => ("attn_norm.weight", vec![h]),
        "post_attention_layernorm.weight" => ("post_attention_norm.weight", vec![h]),
        "self_attn.q_proj.weight" => ("attn_q.weight", vec![q_rows, h]),
        "self_attn.k_proj.weight" => ("attn_k.weight", vec![kv_rows, h]),
        "self_attn.v_proj.weight" => ("attn_v.weight", vec![kv_rows, h]),
        "self_attn.o_proj.weight" => ("attn_output.weight", vec![h, q_rows]),
        "self_attn.q_proj.bias" => ("attn_q.bias", vec![q_rows]),
        "self_attn.k_proj.bias" => ("attn_k.bias", vec![kv_rows]),
        "self_attn.v_proj.bias" => ("attn_v.bias", vec![kv_rows]),
        "self_attn.o_proj.bias" => ("attn_output.bias", vec![h]),
        "self_attn.sinks" => ("attn_sinks.weight", vec![cfg.n_head]),
        "mlp.router.weight" => ("ffn_gate_inp.weight", vec![ne, h]),
        "mlp.router.bias" => ("ffn_gate_inp.bias", vec![ne]),
        "mlp.experts.down_proj_bias" => ("ffn_down_exps.bias", vec![ne, h]),
        _ => return None,
    })
}

/// Where element `c` of row `r` of a gathered tensor sits in its (flat) source tensor:
/// `(r / rows_per_group)·group_stride + (r % rows_per_group)·row_stride + offset + c·col_stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gather {
    /// Output rows per group (per expert).
    pub rows_per_group: usize,
    /// Source elements per group.
    pub group_stride: usize,
    /// Source elements between consecutive rows of a group.
    pub row_stride: usize,
    /// Source element of row 0, column 0.
    pub offset: usize,
    /// Source elements between consecutive columns.
    pub col_stride: usize,
}

impl Gather {
    /// Source index of output row `r`, column 0.
    pub fn row_start(&self, r: usize) -> usize {
        (r / self.rows_per_group) * self.group_stride
            + (r % self.rows_per_group) * self.row_stride
            + self.offset
    }
}

/// How a GGUF expert tensor is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpertSource {
    /// Repacked from the MXFP4 `blocks` and `scales` checkpoint tensors: all rows of each
    /// expert (`parity` `None`) or every other row from `parity` (the gate/up halves).
    Mxfp4 {
        /// The `*_blocks` tensor.
        blocks: String,
        /// The `*_scales` tensor.
        scales: String,
        /// Which interleaved half, if any.
        parity: Option<usize>,
    },
    /// Float values of checkpoint tensor `hf`, gathered.
    Gathered {
        /// The checkpoint tensor.
        hf: String,
        /// Its layout in the GGUF tensor.
        layout: Gather,
    },
}

/// A GGUF tensor made from GPT-OSS's fused expert tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpertTensor {
    /// GGUF name.
    pub gguf: String,
    /// GGUF shape (numpy order).
    pub shape: Vec<usize>,
    /// Where its values come from.
    pub source: ExpertSource,
}

/// Checks that float checkpoint tensor `name` has `shape` and a float dtype.
fn expect_float(name: &str, t: &TensorRef, shape: Vec<usize>) -> Result<()> {
    if t.shape != shape {
        return Err(ConvertError::ShapeMismatch {
            tensor: name.to_owned(),
            actual: t.shape.clone(),
            expected: shape,
        });
    }
    if !matches!(t.dtype, StDtype::F32 | StDtype::F16 | StDtype::Bf16) {
        return Err(ConvertError::UnsupportedDtype {
            tensor: name.to_owned(),
            dtype: t.dtype.name().to_owned(),
        });
    }
    Ok(())
}

/// Checks one MXFP4 pair before anything is planned from it: `blocks` (named `blocks_name`)
/// must be U8 `[E, rows, n, 16]` with `[E, rows, n]` = `want` (from config.json), and its
/// `scales` (named `scales_name`, `None` when absent) U8 `[E, rows, n]`, one exponent per
/// block. The repack indexes both by these shapes, so nothing it reads can fall outside them.
fn check_mxfp4_pair(
    (blocks_name, blocks): (&str, &TensorRef),
    (scales_name, scales): (&str, Option<&TensorRef>),
    want: [usize; 3],
) -> Result<()> {
    let invalid = |tensor: &str, reason: String| {
        Err(ConvertError::InvalidMxfp4 {
            tensor: tensor.to_owned(),
            reason,
        })
    };
    const U8: StDtype = StDtype::Other("U8", 1);
    if blocks.dtype != U8 {
        return invalid(
            blocks_name,
            format!(
                "dtype {}, expected U8 (two 4-bit E2M1 codes per byte)",
                blocks.dtype.name()
            ),
        );
    }
    if blocks.shape.len() != 4 || blocks.shape[3] != 16 {
        return invalid(
            blocks_name,
            format!(
                "shape {:?} does not end in 16: each block of 32 4-bit codes is 16 bytes",
                blocks.shape
            ),
        );
    }
    if blocks.shape[..3] != want {
        return Err(ConvertError::ShapeMismatch {
            tensor: blocks_name.to_owned(),
            actual: blocks.shape.clone(),
            expected: [&want[..], &[16]].concat(),
        });
    }
    let Some(scales) = scales else {
        return invalid(
            blocks_name,
            format!("its scales `{scales_name}` are missing (one E8M0 exponent per block)"),
        );
    };
    if scales.dtype != U8 {
        return invalid(
            scales_name,
            format!(
                "dtype {}, expected U8 (one E8M0 exponent byte per block)",
                scales.dtype.name()
            ),
        );
    }
    if scales.shape != want {
        return invalid(
            scales_name,
            format!(
                "shape {:?} does not pair with the {:?} blocks of `{blocks_name}`: one scale \
                 per block, so {want:?}",
                scales.shape, blocks.shape
            ),
        );
    }
    Ok(())
}

/// The GGUF tensors made from checkpoint tensor `name` (`layers.N.` + `suffix`, under
/// `prefix`) when it is one of the fused expert tensors, with its shape and dtype checked;
/// `Ok(None)` if it is not one. `lookup` finds another checkpoint tensor (a `*_blocks` tensor's
/// `*_scales`). A `*_scales` tensor yields nothing: its `*_blocks` tensor makes the tensors of
/// both and checks the pair ([`check_mxfp4_pair`]); either one without the other is an error.
pub fn expert_tensors<'a>(
    cfg: &ModelConfig,
    layer: usize,
    name: &str,
    suffix: &str,
    t: &TensorRef,
    lookup: impl Fn(&str) -> Option<&'a TensorRef>,
) -> Result<Option<Vec<ExpertTensor>>> {
    let (h, ff, ne) = (cfg.hidden, cfg.ff, cfg.n_expert);
    let b = format!("blk.{layer}.");
    let halves = |stem: &str, shape: &[usize], source: &dyn Fn(usize) -> ExpertSource| {
        ["gate", "up"]
            .iter()
            .enumerate()
            .map(|(parity, which)| ExpertTensor {
                gguf: format!("{b}ffn_{which}_exps.{stem}"),
                shape: shape.to_vec(),
                source: source(parity),
            })
            .collect::<Vec<_>>()
    };
    let tensors = match suffix {
        "mlp.experts.gate_up_proj_scales" | "mlp.experts.down_proj_scales" => {
            // Its blocks check the pair; scales without blocks would otherwise go unused.
            let stem = name.strip_suffix("_scales").unwrap_or(name);
            let blocks = format!("{stem}_blocks");
            if lookup(&blocks).is_none() {
                return Err(ConvertError::InvalidMxfp4 {
                    tensor: name.to_owned(),
                    reason: format!(
                        "its blocks `{blocks}` are missing (the 4-bit codes it scales)"
                    ),
                });
            }
            vec![]
        }
        "mlp.experts.gate_up_proj_blocks" | "mlp.experts.down_proj_blocks" => {
            if !h.is_multiple_of(32) || !ff.is_multiple_of(32) {
                return Err(ConvertError::UnsupportedVariant(format!(
                    "MXFP4 experts (`{name}`) with `hidden_size` or `intermediate_size` not a \
                     multiple of 32"
                )));
            }
            let gate_up = suffix.contains("gate_up");
            // Saturating: an absurd config then simply disagrees with the stored shape.
            let (rows, cols) = if gate_up {
                (ff.saturating_mul(2), h)
            } else {
                (h, ff)
            };
            let stem = name.strip_suffix("_blocks").unwrap_or(name);
            let scales = format!("{stem}_scales");
            check_mxfp4_pair((name, t), (&scales, lookup(&scales)), [ne, rows, cols / 32])?;
            let mxfp4 = |parity| ExpertSource::Mxfp4 {
                blocks: name.to_owned(),
                scales: scales.clone(),
                parity,
            };
            if gate_up {
                halves("weight", &[ne, ff, h], &|p| mxfp4(Some(p)))
            } else {
                vec![ExpertTensor {
                    gguf: format!("{b}ffn_down_exps.weight"),
                    shape: vec![ne, h, ff],
                    source: mxfp4(None),
                }]
            }
        }
        "mlp.experts.gate_up_proj_bias" => {
            expect_float(name, t, vec![ne, ff.saturating_mul(2)])?;
            let layout = |p| Gather {
                rows_per_group: 1,
                group_stride: 2 * ff,
                row_stride: 0,
                offset: p,
                col_stride: 2,
            };
            halves("bias", &[ne, ff], &|p| ExpertSource::Gathered {
                hf: name.to_owned(),
                layout: layout(p),
            })
        }
        // Dequantized experts: input-major, so transposed (and gate/up split by column).
        "mlp.experts.gate_up_proj" => {
            expect_float(name, t, vec![ne, h, ff.saturating_mul(2)])?;
            let layout = |p| Gather {
                rows_per_group: ff,
                group_stride: h * 2 * ff,
                row_stride: 2,
                offset: p,
                col_stride: 2 * ff,
            };
            halves("weight", &[ne, ff, h], &|p| ExpertSource::Gathered {
                hf: name.to_owned(),
                layout: layout(p),
            })
        }
        "mlp.experts.down_proj" => {
            expect_float(name, t, vec![ne, ff, h])?;
            vec![ExpertTensor {
                gguf: format!("{b}ffn_down_exps.weight"),
                shape: vec![ne, h, ff],
                source: ExpertSource::Gathered {
                    hf: name.to_owned(),
                    layout: Gather {
                        rows_per_group: h,
                        group_stride: ff * h,
                        row_stride: 1,
                        offset: 0,
                        col_stride: h,
                    },
                },
            }]
        }
        _ => return Ok(None),
    };
    Ok(Some(tensors))
}

/// The per-layer `(GGUF suffix, checkpoint suffix)` pairs a GPT-OSS layer must have (the
/// experts named by their MXFP4 tensors; dequantized ones satisfy the same GGUF names).
pub fn required_layer_tensors(cfg: &ModelConfig) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        ("attn_norm.weight", "input_layernorm.weight"),
        (
            "post_attention_norm.weight",
            "post_attention_layernorm.weight",
        ),
        ("attn_q.weight", "self_attn.q_proj.weight"),
        ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
        ("attn_output.bias", "self_attn.o_proj.bias"),
        ("attn_sinks.weight", "self_attn.sinks"),
        ("ffn_gate_inp.weight", "mlp.router.weight"),
        ("ffn_gate_inp.bias", "mlp.router.bias"),
        ("ffn_gate_exps.weight", "mlp.experts.gate_up_proj_blocks"),
        ("ffn_up_exps.weight", "mlp.experts.gate_up_proj_blocks"),
        ("ffn_down_exps.weight", "mlp.experts.down_proj_blocks"),
        ("ffn_gate_exps.bias", "mlp.experts.gate_up_proj_bias"),
        ("ffn_up_exps.bias", "mlp.experts.gate_up_proj_bias"),
        ("ffn_down_exps.bias", "mlp.experts.down_proj_bias"),
    ];
    if cfg.attention_bias {
        v.extend([
            ("attn_q.bias", "self_attn.q_proj.bias"),
            ("attn_k.bias", "self_attn.k_proj.bias"),
            ("attn_v.bias", "self_attn.v_proj.bias"),
        ]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    /// openai/gpt-oss-20b's config.json (its `layer_types` shortened to the pattern's rule).
    pub(crate) const GPT_OSS_20B: &str = r#"{
        "architectures": ["GptOssForCausalLM"], "attention_bias": true, "attention_dropout": 0.0,
        "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu",
        "hidden_size": 2880, "initial_context_length": 4096, "initializer_range": 0.02,
        "intermediate_size": 2880, "max_position_embeddings": 131072, "model_type": "gpt_oss",
        "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 24,
        "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": false,
        "pad_token_id": 199999,
        "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn",
            "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"},
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
            "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false},
        "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128,
        "swiglu_limit": 7.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
        "use_cache": true, "vocab_size": 201088
    }"#;

    #[test]
    fn metadata_of_gpt_oss_20b() {
        let cfg = ModelConfig::parse(GPT_OSS_20B.as_bytes()).unwrap();
        assert_eq!(cfg.arch, Arch::GptOss);
        assert!(declares_mxfp4(&cfg));
        let kv = cfg.metadata();
        let want: Vec<(&str, MetaValue)> = vec![
            ("context_length", MetaValue::U32(131072)),
            ("embedding_length", MetaValue::U32(2880)),
            ("feed_forward_length", MetaValue::U32(2880)),
            ("block_count", MetaValue::U32(24)),
            ("attention.head_count", MetaValue::U32(64)),
            ("attention.head_count_kv", MetaValue::U32(8)),
            ("attention.key_length", MetaValue::U32(64)),
            ("attention.value_length", MetaValue::U32(64)),
            ("rope.freq_base", MetaValue::F32(150000.0)),
            ("attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5)),
            ("expert_count", MetaValue::U32(32)),
            ("expert_used_count", MetaValue::U32(4)),
            ("rope.scaling.type", MetaValue::Str("yarn".into())),
            ("rope.scaling.factor", MetaValue::F32(32.0)),
            ("rope.scaling.original_context_length", MetaValue::U32(4096)),
            ("rope.scaling.yarn_beta_fast", MetaValue::F32(32.0)),
            ("rope.scaling.yarn_beta_slow", MetaValue::F32(1.0)),
            ("attention.sliding_window", MetaValue::U32(128)),
            ("expert_feed_forward_length", MetaValue::U32(2880)),
        ];
        let want: Vec<(String, MetaValue)> = want
            .into_iter()
            .map(|(k, v)| (format!("gpt-oss.{k}"), v))
            .collect();
        assert_eq!(kv, want);
    }

    #[test]
    fn refuses_what_llama_cpp_hard_codes_otherwise() {
        let mut v: Value = serde_json::from_str(GPT_OSS_20B).unwrap();
        v["swiglu_limit"] = 10.0.into();
        let e = ModelConfig::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("swiglu_limit"), "{e}");
        let mut v: Value = serde_json::from_str(GPT_OSS_20B).unwrap();
        v["num_hidden_layers"] = 3.into();
        v["layer_types"] =
            serde_json::json!(["full_attention", "sliding_attention", "full_attention"]);
        let e = ModelConfig::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("layer_types"), "{e}");
        v["layer_types"] =
            serde_json::json!(["sliding_attention", "full_attention", "sliding_attention"]);
        ModelConfig::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        let mut v: Value = serde_json::from_str(GPT_OSS_20B).unwrap();
        v.as_object_mut().unwrap().remove("sliding_window");
        assert!(ModelConfig::parse(&serde_json::to_vec(&v).unwrap()).is_err());
    }

    #[test]
    fn gathers_address_the_interleaved_and_transposed_sources() {
        // gate_up_proj [E=2, hidden=3, 2·ff=4]: gate row f of expert e, column h is
        // src[e][h][2f]; up is src[e][h][2f + 1].
        let (h, ff) = (3, 2);
        let gate = Gather {
            rows_per_group: ff,
            group_stride: h * 2 * ff,
            row_stride: 2,
            offset: 0,
            col_stride: 2 * ff,
        };
        let idx = |e: usize, hh: usize, j: usize| e * h * 2 * ff + hh * 2 * ff + j;
        // Output row 3 = expert 1, f = 1; column 2.
        assert_eq!(gate.row_start(3) + 2 * gate.col_stride, idx(1, 2, 2));
        let up = Gather { offset: 1, ..gate };
        assert_eq!(up.row_start(3) + 2 * up.col_stride, idx(1, 2, 3));
    }
}
