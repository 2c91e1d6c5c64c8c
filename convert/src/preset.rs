//! The user-facing `--type` presets and the per-tensor type choice.
//!
//! F32/F16/BF16/Q8_0 follow `convert_hf_to_gguf.py` (every ≥2-D weight gets
//! the type, F16 if a row does not divide into blocks). Everything else
//! follows `llama-quantize`'s `llama_tensor_get_type` without an imatrix:
//! the output (or tied embedding) gets Q6_K, the `*_K_M`/`*_K_S` mixes bump
//! `attn_v`/`ffn_down` on the layers `use_more_bits` selects, and a row that
//! does not divide into the chosen block falls back as llama.cpp does.
//! MXFP4_MOE is llama-quantize's too: merged expert tensors MXFP4, every other
//! weight (the output included) Q8_0. In all cases 1-D tensors, norms, biases
//! and `rope_freqs` stay F32.

use std::str::FromStr;

use crate::error::ConvertError;
use crate::quant::GgmlType;

/// The `--type` of `larder convert --to gguf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgufType {
    /// `f32`
    F32,
    /// `f16`
    F16,
    /// `bf16`
    Bf16,
    /// `q8_0`
    Q8_0,
    /// `q4_0`
    Q4_0,
    /// `q4_1`
    Q4_1,
    /// `q5_0`
    Q5_0,
    /// `q5_1`
    Q5_1,
    /// `q2_k`
    Q2K,
    /// `q2_k_s` (llama-quantize requires an importance matrix for it)
    Q2KS,
    /// `q3_k_s`
    Q3KS,
    /// `q3_k_m`
    Q3KM,
    /// `q3_k_l`
    Q3KL,
    /// `q4_k_s`
    Q4KS,
    /// `q4_k_m`
    Q4KM,
    /// `q5_k_s`
    Q5KS,
    /// `q5_k_m`
    Q5KM,
    /// `q6_k`
    Q6K,
    /// `iq4_nl`
    Iq4Nl,
    /// `iq4_xs`
    Iq4Xs,
    /// `mxfp4_moe`: MoE expert tensors MXFP4, everything else Q8_0
    Mxfp4Moe,
}

impl GgufType {
    /// Every preset, in CLI order.
    pub const ALL: [GgufType; 21] = [
        Self::F32,
        Self::F16,
        Self::Bf16,
        Self::Q8_0,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q2K,
        Self::Q2KS,
        Self::Q3KS,
        Self::Q3KM,
        Self::Q3KL,
        Self::Q4KS,
        Self::Q4KM,
        Self::Q5KS,
        Self::Q5KM,
        Self::Q6K,
        Self::Iq4Nl,
        Self::Iq4Xs,
        Self::Mxfp4Moe,
    ];

    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q5_0 => "q5_0",
            Self::Q5_1 => "q5_1",
            Self::Q2K => "q2_k",
            Self::Q2KS => "q2_k_s",
            Self::Q3KS => "q3_k_s",
            Self::Q3KM => "q3_k_m",
            Self::Q3KL => "q3_k_l",
            Self::Q4KS => "q4_k_s",
            Self::Q4KM => "q4_k_m",
            Self::Q5KS => "q5_k_s",
            Self::Q5KM => "q5_k_m",
            Self::Q6K => "q6_k",
            Self::Iq4Nl => "iq4_nl",
            Self::Iq4Xs => "iq4_xs",
            Self::Mxfp4Moe => "mxfp4_moe",
        }
    }

    /// `general.file_type` (`llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 7,
            Self::Q5_0 => 8,
            Self::Q5_1 => 9,
            Self::Q2K => 10,
            Self::Q3KS => 11,
            Self::Q3KM => 12,
            Self::Q3KL => 13,
            Self::Q2KS => 21,
            Self::Iq4Nl => 25,
            Self::Iq4Xs => 30,
            Self::Q4KS => 14,
            Self::Q4KM => 15,
            Self::Q5KS => 16,
            Self::Q5KM => 17,
            Self::Q6K => 18,
            Self::Bf16 => 32,
            Self::Mxfp4Moe => 38,
        }
    }

    /// The default tensor type of the preset.
    pub fn base_type(self) -> GgmlType {
        match self {
            Self::F32 => GgmlType::F32,
            Self::F16 => GgmlType::F16,
            Self::Bf16 => GgmlType::Bf16,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4_1 => GgmlType::Q4_1,
            Self::Q5_0 => GgmlType::Q5_0,
            Self::Q5_1 => GgmlType::Q5_1,
            Self::Q2K | Self::Q2KS => GgmlType::Q2K,
            Self::Q3KS | Self::Q3KM | Self::Q3KL => GgmlType::Q3K,
            Self::Iq4Nl => GgmlType::Iq4Nl,
            Self::Iq4Xs => GgmlType::Iq4Xs,
            Self::Q4KS | Self::Q4KM => GgmlType::Q4K,
            Self::Q5KS | Self::Q5KM => GgmlType::Q5K,
            Self::Q6K => GgmlType::Q6K,
            Self::Mxfp4Moe => GgmlType::Mxfp4,
        }
    }

    /// Whether tensors go through `llama-quantize`'s rules (rather than being written by
    /// `convert_hf_to_gguf.py` directly).
    pub fn is_quantize_preset(self) -> bool {
        !matches!(self, Self::F32 | Self::F16 | Self::Bf16 | Self::Q8_0)
    }
}

impl FromStr for GgufType {
    type Err = ConvertError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == lower)
            .ok_or_else(|| ConvertError::UnknownType(s.to_owned()))
    }
}

impl std::fmt::Display for GgufType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Model facts the mixing rules look at.
#[derive(Debug, Clone, Copy)]
pub struct MixContext {
    /// Number of layers (= number of `attn_v` and `ffn_down` tensors).
    pub n_layer: usize,
    /// `n_head / n_head_kv`.
    pub n_gqa: usize,
    /// Whether an `output.weight` is written (untied embeddings).
    pub has_output: bool,
    /// llama.cpp's `LLM_TYPE_70B` (Llama with 80 layers).
    pub is_70b: bool,
    /// Routed experts per layer (0 for a dense model).
    pub n_expert: usize,
    /// Whether an importance matrix is used.
    pub has_imatrix: bool,
}

/// llama.cpp's `use_more_bits`.
pub fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// What `convert_hf_to_gguf.py` stores as F32 whatever the output type:
/// 1-D tensors, norms, biases, generated rope factors and MoE routers.
fn converter_keeps_f32(name: &str, shape: &[usize]) -> bool {
    shape.len() < 2
        || !name.ends_with(".weight")
        || name.ends_with("_norm.weight")
        || name == "rope_freqs.weight"
        || name.ends_with("ffn_gate_inp.weight")
        || name.ends_with("ffn_gate_inp_shexp.weight")
}

/// `ggml_n_dims`: dimensions up to the last one larger than 1 (ggml order),
/// so a `[1, n]` tensor (numpy order) counts as 1-D.
fn ggml_n_dims(shape: &[usize]) -> usize {
    let leading_ones = shape.iter().take_while(|&&d| d == 1).count();
    (shape.len() - leading_ones.min(shape.len().saturating_sub(1))).max(1)
}

/// `tensor_allows_quantization` of `llama-quantize`, for the tensors our
/// architectures have: 2-D and 3-D weights except norms and the MoE router.
/// (Qwen2-MoE's shared-expert gate, `ffn_gate_inp_shexp`, is `[1, hidden]`:
/// 1-D to ggml, so it stays F32.)
fn quantize_allows(name: &str, shape: &[usize]) -> bool {
    ggml_n_dims(shape) >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !name.contains("ffn_gate_inp.weight")
}

/// `tensor_get_category` of `llama-quantize` (substring tests, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttentionV,
    AttentionK,
    AttentionQ,
    AttentionOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    match name {
        "output.weight" => return Category::Output,
        "token_embd.weight" => return Category::TokenEmbd,
        _ => {}
    }
    // A fused `attn_qkv` counts as an attention-value tensor.
    for (pat, cat) in [
        ("attn_qkv.weight", Category::AttentionV),
        ("attn_v.weight", Category::AttentionV),
        ("attn_k.weight", Category::AttentionK),
        ("attn_q.weight", Category::AttentionQ),
        ("attn_output.weight", Category::AttentionOutput),
        ("ffn_up", Category::FfnUp),
        ("ffn_gate", Category::FfnGate),
        ("ffn_down", Category::FfnDown),
    ] {
        if name.contains(pat) {
            return cat;
        }
    }
    Category::Other
}

/// Chooses the type of tensor `name` (numpy-order `shape`) under `preset`.
/// Returns the type and, if a fallback happened, a warning.
pub fn choose_type(
    preset: GgufType,
    name: &str,
    shape: &[usize],
    ctx: &MixContext,
) -> (GgmlType, Option<String>) {
    let ne0 = *shape.last().unwrap_or(&1);
    let base = preset.base_type();
    if !preset.is_quantize_preset() {
        if converter_keeps_f32(name, shape) {
            return (GgmlType::F32, None);
        }
        if !ne0.is_multiple_of(base.block_size()) {
            return (
                GgmlType::F16,
                Some(format!(
                    "{name}: row of {ne0} not divisible by {}, stored as F16",
                    base.block_size()
                )),
            );
        }
        return (base, None);
    }
    if !quantize_allows(name, shape) {
        return (GgmlType::F32, None);
    }
    use GgmlType as T;
    use GgufType as P;
    let mut ty = base;
    let cat = category(name);
    let i = crate::arch::layer_of(name).unwrap_or(0);
    let n = ctx.n_layer;
    let gqa4 = ctx.n_gqa >= 4;
    let is_output = cat == Category::Output || (!ctx.has_output && cat == Category::TokenEmbd);
    if preset == P::Mxfp4Moe {
        // MXFP4_MOE has rules of its own: the output (or tied embedding) Q8_0, tensors with
        // more than one matrix (ggml `ne[2] > 1`: the merged experts) MXFP4, the rest Q8_0.
        ty = if !is_output && shape.len() == 3 && shape[0] > 1 {
            T::Mxfp4
        } else {
            T::Q8_0
        };
    } else if is_output {
        if !ne0.is_multiple_of(ty.block_size()) {
            ty = T::Q8_0;
        } else if ty != T::Q8_0 {
            ty = T::Q6K;
        }
    } else if cat == Category::AttentionV {
        match preset {
            P::Q2K => ty = if gqa4 { T::Q4K } else { T::Q3K },
            P::Q2KS if gqa4 => ty = T::Q4K,
            P::Q3KM => ty = if i < 2 { T::Q5K } else { T::Q4K },
            P::Q3KL => ty = T::Q5K,
            P::Iq4Nl | P::Iq4Xs if gqa4 => ty = T::Q5K,
            P::Q4KM | P::Q5KM if use_more_bits(i, n) => ty = T::Q6K,
            P::Q4KS if i < 4 => ty = T::Q5K,
            _ => {}
        }
        if ctx.is_70b && matches!(ty, T::Q3K | T::Q4K) {
            ty = T::Q5K;
        }
        if ctx.n_expert == 8 {
            ty = T::Q8_0;
        }
    } else if cat == Category::AttentionK {
        if ctx.n_expert == 8 {
            ty = T::Q8_0;
        }
    } else if cat == Category::FfnDown {
        match preset {
            P::Q2K => ty = T::Q3K,
            P::Q2KS if i < n / 8 => ty = T::Q4K,
            P::Q2KS => {}
            P::Q3KM => ty = if i < n / 16 { T::Q5K } else { T::Q4K },
            P::Q3KL => ty = T::Q5K,
            P::Q4KM if use_more_bits(i, n) => ty = T::Q6K,
            P::Q4KM => {}
            P::Iq4Nl | P::Iq4Xs if i < n / 8 && !ctx.has_imatrix => ty = T::Q5K,
            P::Q5KM if use_more_bits(i, n) => ty = T::Q6K,
            P::Q4KS if i < n / 8 => ty = T::Q5K,
            // With an imatrix, the first layers of Q4_0/Q5_0 get the variant with a minimum.
            P::Q4_0 if ctx.has_imatrix && i < n / 8 => ty = T::Q4_1,
            P::Q5_0 if ctx.has_imatrix && i < n / 8 => ty = T::Q5_1,
            _ => {}
        }
    } else if cat == Category::AttentionOutput {
        if ctx.n_expert == 8 {
            if matches!(
                preset,
                P::Q2K | P::Q3KS | P::Q3KM | P::Iq4Nl | P::Q4KS | P::Q4KM | P::Iq4Xs
            ) {
                ty = T::Q5K;
            }
        } else {
            match preset {
                P::Q2K => ty = T::Q3K,
                P::Q3KM => ty = T::Q4K,
                P::Q3KL => ty = T::Q5K,
                _ => {}
            }
        }
    }
    if !ne0.is_multiple_of(ty.block_size()) {
        let fallback = match ty {
            T::Q4K => T::Q5_0,
            T::Q5K => T::Q5_1,
            T::Q6K => T::Q8_0,
            T::Iq4Xs => T::Iq4Nl,
            // Newer llama.cpp: Q2_K/Q3_K fall back to Q4_0 (older: IQ4_NL).
            T::Q2K | T::Q3K => T::Q4_0,
            other => other,
        };
        let fallback = if !ne0.is_multiple_of(fallback.block_size()) {
            T::F16
        } else {
            fallback
        };
        let warning = format!(
            "{name}: row of {ne0} not divisible by {} for {ty}, using {fallback}",
            ty.block_size()
        );
        return (fallback, Some(warning));
    }
    (ty, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_more_bits_matches_llama_cpp() {
        let sel = |n| (0..n).filter(|&i| use_more_bits(i, n)).collect::<Vec<_>>();
        assert_eq!(sel(8), vec![0, 3, 6, 7]);
        assert_eq!(sel(16), vec![0, 1, 4, 7, 10, 13, 14, 15]);
        assert_eq!(sel(22), vec![0, 1, 4, 7, 10, 13, 16, 19, 20, 21]);
        assert_eq!(
            sel(28),
            vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]
        );
    }

    #[test]
    fn cli_spellings_round_trip() {
        for t in GgufType::ALL {
            assert_eq!(t.as_str().parse::<GgufType>().unwrap(), t);
            assert_eq!(t.as_str().to_uppercase().parse::<GgufType>().unwrap(), t);
        }
        assert!("q4_k".parse::<GgufType>().is_err());
    }

    #[test]
    fn q4_k_m_mix() {
        let ctx = MixContext {
            n_layer: 8,
            n_gqa: 2,
            has_output: true,
            is_70b: false,
            n_expert: 0,
            has_imatrix: false,
        };
        let t = |n: &str| choose_type(GgufType::Q4KM, n, &[256, 256], &ctx).0;
        assert_eq!(t("output.weight"), GgmlType::Q6K);
        assert_eq!(t("token_embd.weight"), GgmlType::Q4K);
        assert_eq!(t("blk.3.attn_v.weight"), GgmlType::Q6K);
        assert_eq!(t("blk.2.attn_v.weight"), GgmlType::Q4K);
        assert_eq!(t("blk.7.ffn_down.weight"), GgmlType::Q6K);
        assert_eq!(t("blk.1.attn_q.weight"), GgmlType::Q4K);
        assert_eq!(
            choose_type(GgufType::Q4KM, "blk.0.attn_norm.weight", &[256], &ctx).0,
            GgmlType::F32
        );
        // 896 % 256 != 0: Q4_K → Q5_0, output → Q8_0.
        assert_eq!(
            choose_type(GgufType::Q4KM, "blk.1.attn_q.weight", &[896, 896], &ctx).0,
            GgmlType::Q5_0
        );
        assert_eq!(
            choose_type(GgufType::Q4KM, "output.weight", &[100, 896], &ctx).0,
            GgmlType::Q8_0
        );
        let tied = MixContext {
            has_output: false,
            ..ctx
        };
        assert_eq!(
            choose_type(GgufType::Q4_0, "token_embd.weight", &[100, 256], &tied).0,
            GgmlType::Q6K
        );
    }

    /// MXFP4_MOE: merged experts MXFP4, every other weight Q8_0 (the output and a tied
    /// embedding too), non-weights F32, rows that do not fit 32 F16.
    #[test]
    fn mxfp4_moe_mix() {
        let ctx = MixContext {
            n_layer: 24,
            n_gqa: 8,
            has_output: true,
            is_70b: false,
            n_expert: 32,
            has_imatrix: false,
        };
        let t = |n: &str, shape: &[usize]| choose_type(GgufType::Mxfp4Moe, n, shape, &ctx).0;
        let exps = [32, 2880, 2880];
        assert_eq!(t("blk.3.ffn_gate_exps.weight", &exps), GgmlType::Mxfp4);
        assert_eq!(t("blk.3.ffn_down_exps.weight", &exps), GgmlType::Mxfp4);
        assert_eq!(t("blk.3.ffn_gate_exps.bias", &[32, 2880]), GgmlType::F32);
        assert_eq!(t("blk.3.ffn_gate_inp.weight", &[32, 2880]), GgmlType::F32);
        assert_eq!(t("blk.3.attn_v.weight", &[512, 2880]), GgmlType::Q8_0);
        assert_eq!(t("token_embd.weight", &[201088, 2880]), GgmlType::Q8_0);
        assert_eq!(t("output.weight", &[201088, 2880]), GgmlType::Q8_0);
        assert_eq!(t("blk.0.ffn_up_shexp.weight", &[64, 100]), GgmlType::F16);
        // One expert is one matrix (ggml `ne[2] == 1`): Q8_0.
        assert_eq!(t("blk.0.ffn_up_exps.weight", &[1, 64, 64]), GgmlType::Q8_0);
        assert_eq!(GgufType::Mxfp4Moe.file_type(), 38);
    }

    /// Qwen3-0.6B: 28 layers, 16 heads over 8 KV heads, head_dim 128, tied.
    /// The rules look at names, rows and n_gqa only, so head_dim != hidden /
    /// heads changes nothing; the q/k norms stay F32.
    #[test]
    fn qwen3_0_6b_mix() {
        let ctx = MixContext {
            n_layer: 28,
            n_gqa: 2,
            has_output: false,
            is_70b: false,
            n_expert: 0,
            has_imatrix: false,
        };
        let t = |p, n: &str, shape: &[usize]| choose_type(p, n, shape, &ctx).0;
        assert_eq!(
            t(GgufType::Q4KM, "token_embd.weight", &[151936, 1024]),
            GgmlType::Q6K
        );
        assert_eq!(
            t(GgufType::Q4KM, "blk.3.attn_q_norm.weight", &[128]),
            GgmlType::F32
        );
        assert_eq!(
            t(GgufType::Q2K, "blk.3.attn_k_norm.weight", &[128]),
            GgmlType::F32
        );
        assert_eq!(
            t(GgufType::Q4KM, "blk.2.attn_q.weight", &[2048, 1024]),
            GgmlType::Q4K
        );
        // use_more_bits(i, 28): 0, 1, 2, 5, ... 23..27.
        assert_eq!(
            t(GgufType::Q4KM, "blk.5.attn_v.weight", &[1024, 1024]),
            GgmlType::Q6K
        );
        assert_eq!(
            t(GgufType::Q4KM, "blk.6.attn_v.weight", &[1024, 1024]),
            GgmlType::Q4K
        );
        assert_eq!(
            t(GgufType::Q5KM, "blk.27.ffn_down.weight", &[1024, 3072]),
            GgmlType::Q6K
        );
        // attn_output rows are heads × head_dim = 2048 wide.
        assert_eq!(
            t(GgufType::Q3KM, "blk.9.attn_output.weight", &[1024, 2048]),
            GgmlType::Q4K
        );
        // n_gqa 2 < 4: Q2_K's attn_v is Q3_K; with 4 KV groups it is Q4_K.
        assert_eq!(
            t(GgufType::Q2K, "blk.9.attn_v.weight", &[1024, 1024]),
            GgmlType::Q3K
        );
        let gqa4 = MixContext { n_gqa: 4, ..ctx };
        assert_eq!(
            choose_type(GgufType::Q2K, "blk.9.attn_v.weight", &[512, 1024], &gqa4).0,
            GgmlType::Q4K
        );
    }
}
