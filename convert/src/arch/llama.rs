//! Llama (and Mistral): metadata keys, the Q/K row permutation and the
//! Llama 3 `rope_freqs.weight` tensor, as llama.cpp's `LlamaModel` writes them.

use super::ModelConfig;
use crate::gguf::MetaValue;

/// `llama.*` keys: the common ones plus `vocab_size`, `rope.dimension_count`
/// and linear/yarn rope scaling.
pub fn metadata(cfg: &ModelConfig) -> Vec<(String, MetaValue)> {
    let mut kv = cfg.base_metadata();
    kv.push((
        "llama.vocab_size".into(),
        MetaValue::U32(cfg.vocab_size as u32),
    ));
    kv.push((
        "llama.rope.dimension_count".into(),
        MetaValue::U32(cfg.head_dim() as u32),
    ));
    cfg.rope_scaling_metadata(&mut kv);
    kv
}

/// Source row of output row `r` under llama.cpp's `permute(W, n_head)`:
/// HF stores rotate-half (NeoX) order, GGUF's `llama` wants interleaved
/// pairs, so `new[h·hd + 2i + j] = old[h·hd + j·hd/2 + i]`.
pub fn permuted_source_row(r: usize, rows: usize, heads: usize) -> usize {
    let hd = rows / heads;
    let (h, rem) = (r / hd, r % hd);
    let (i, j) = (rem / 2, rem % 2);
    h * hd + j * (hd / 2) + i
}

/// The Llama 3 rope frequency factors (`rope_freqs.weight`, `head_dim/2`
/// values), or `None` when the config has no `llama3` rope scaling.
pub fn rope_freqs(cfg: &ModelConfig) -> Option<Vec<f32>> {
    let s = cfg.rope_scaling.as_ref()?;
    if s.kind != "llama3" {
        return None;
    }
    let base = cfg.rope_theta.unwrap_or(10000.0) as f32;
    let dim = cfg.head_dim();
    let factor = s.factor.unwrap_or(8.0);
    let low = s.low_freq_factor.unwrap_or(1.0);
    let high = s.high_freq_factor.unwrap_or(4.0);
    // llama.cpp reads the top-level key here, not the one inside rope_scaling.
    let old_ctx = cfg.original_max_position_embeddings.unwrap_or(8192) as f64;
    let low_wavelen = old_ctx / low;
    let high_wavelen = old_ctx / high;
    Some(
        (0..dim)
            .step_by(2)
            .map(|i| {
                let freq = 1.0f32 / base.powf(i as f32 / dim as f32);
                let wavelen = f64::from((2.0 * std::f64::consts::PI) as f32 / freq);
                let f = if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    factor
                } else {
                    let smooth = (old_ctx / wavelen - low) / (high - low);
                    1.0 / ((1.0 - smooth) / factor + smooth)
                };
                f as f32
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_numpy_reshape_swapaxes() {
        // W.reshape(H, 2, hd/2).swapaxes(1, 2).reshape(rows): for H=2, hd=4
        // old rows [0..8) become [0,2,1,3, 4,6,5,7].
        let got: Vec<usize> = (0..8).map(|r| permuted_source_row(r, 8, 2)).collect();
        assert_eq!(got, vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }
}
