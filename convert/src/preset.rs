//! The user-facing `--type` presets and the per-tensor type choice.
//!
//! F32/F16/BF16/Q8_0 follow `convert_hf_to_gguf.py` (every ≥2-D weight gets
//! the type, F16 if a row does not divide into blocks). Everything else
//! follows `llama-quantize`'s `llama_tensor_get_type` without an imatrix:
//! the output (or tied embedding) gets Q6_K, the `*_K_M`/`*_K_S` mixes bump
//! `attn_v`/`ffn_down` on the layers `use_more_bits` selects, and a row that
//! does not divide into the chosen block falls back as llama.cpp does. In
//! both cases 1-D tensors, norms, biases and `rope_freqs` stay F32.

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
    /// `q3_k_m`
    Q3KM,
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
}

impl GgufType {
    /// Every preset, in CLI order.
    pub const ALL: [GgufType; 15] = [
        Self::F32,
        Self::F16,
        Self::Bf16,
        Self::Q8_0,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q2K,
        Self::Q3KM,
        Self::Q4KS,
        Self::Q4KM,
        Self::Q5KS,
        Self::Q5KM,
        Self::Q6K,
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
            Self::Q3KM => "q3_k_m",
            Self::Q4KS => "q4_k_s",
            Self::Q4KM => "q4_k_m",
            Self::Q5KS => "q5_k_s",
            Self::Q5KM => "q5_k_m",
            Self::Q6K => "q6_k",
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
            Self::Q3KM => 12,
            Self::Q4KS => 14,
            Self::Q4KM => 15,
            Self::Q5KS => 16,
            Self::Q5KM => 17,
            Self::Q6K => 18,
            Self::Bf16 => 32,
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
            Self::Q2K => GgmlType::Q2K,
            Self::Q3KM => GgmlType::Q3K,
            Self::Q4KS | Self::Q4KM => GgmlType::Q4K,
            Self::Q5KS | Self::Q5KM => GgmlType::Q5K,
            Self::Q6K => GgmlType::Q6K,
        }
    }

    /// Whether tensors go through `llama-quantize`'s rules.
    fn is_quantize_preset(self) -> bool {
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
}

/// llama.cpp's `use_more_bits`.
pub fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// Whether a tensor is stored unquantized as F32 regardless of the preset.
fn stays_f32(name: &str, shape: &[usize]) -> bool {
    shape.len() < 2
        || !name.ends_with(".weight")
        || name.ends_with("_norm.weight")
        || name == "rope_freqs.weight"
}

/// Chooses the type of tensor `name` (numpy-order `shape`) under `preset`.
/// Returns the type and, if a fallback happened, a warning.
pub fn choose_type(
    preset: GgufType,
    name: &str,
    shape: &[usize],
    ctx: &MixContext,
) -> (GgmlType, Option<String>) {
    if stays_f32(name, shape) {
        return (GgmlType::F32, None);
    }
    let ne0 = *shape.last().unwrap_or(&1);
    let base = preset.base_type();
    if !preset.is_quantize_preset() {
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
    let mut ty = base;
    let layer = crate::arch::layer_of(name);
    let is_output = name == "output.weight" || (!ctx.has_output && name == "token_embd.weight");
    if is_output {
        if !ne0.is_multiple_of(ty.block_size()) {
            ty = GgmlType::Q8_0;
        } else if ty != GgmlType::Q8_0 {
            ty = GgmlType::Q6K;
        }
    } else if name.ends_with("attn_v.weight") {
        let i = layer.unwrap_or(0);
        match preset {
            GgufType::Q2K => {
                ty = if ctx.n_gqa >= 4 {
                    GgmlType::Q4K
                } else {
                    GgmlType::Q3K
                }
            }
            GgufType::Q3KM => ty = if i < 2 { GgmlType::Q5K } else { GgmlType::Q4K },
            GgufType::Q4KM | GgufType::Q5KM if use_more_bits(i, ctx.n_layer) => ty = GgmlType::Q6K,
            GgufType::Q4KS if i < 4 => ty = GgmlType::Q5K,
            _ => {}
        }
        if ctx.is_70b && matches!(ty, GgmlType::Q3K | GgmlType::Q4K) {
            ty = GgmlType::Q5K;
        }
    } else if name.ends_with("ffn_down.weight") {
        let (i, n) = (layer.unwrap_or(0), ctx.n_layer);
        match preset {
            GgufType::Q2K => ty = GgmlType::Q3K,
            GgufType::Q3KM => {
                ty = if i < n / 16 {
                    GgmlType::Q5K
                } else {
                    GgmlType::Q4K
                }
            }
            GgufType::Q4KM | GgufType::Q5KM if use_more_bits(i, n) => ty = GgmlType::Q6K,
            GgufType::Q4KS if i < n / 8 => ty = GgmlType::Q5K,
            _ => {}
        }
    } else if name.ends_with("attn_output.weight") {
        match preset {
            GgufType::Q2K => ty = GgmlType::Q3K,
            GgufType::Q3KM => ty = GgmlType::Q4K,
            _ => {}
        }
    }
    if !ne0.is_multiple_of(ty.block_size()) {
        let fallback = match ty {
            GgmlType::Q4K => GgmlType::Q5_0,
            GgmlType::Q5K => GgmlType::Q5_1,
            GgmlType::Q6K => GgmlType::Q8_0,
            // Newer llama.cpp: Q2_K/Q3_K fall back to Q4_0 (older: IQ4_NL).
            GgmlType::Q2K | GgmlType::Q3K => GgmlType::Q4_0,
            _ => GgmlType::F16,
        };
        let fallback = if !ne0.is_multiple_of(fallback.block_size()) {
            GgmlType::F16
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
