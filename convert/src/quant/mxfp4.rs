//! MXFP4 (OCP microscaling FP4): 32 elements per block, an E8M0 exponent byte `e` then 16
//! bytes of E2M1 codes, `y = kvalue[q] · 2^(e-128)` with ggml's doubled E2M1 table. In a ggml
//! block the low nibble of byte `j` is element `j` and the high nibble element `j + 16`.
//!
//! Three things live here: ggml's `quantize_row_mxfp4_ref` and `dequantize_row_mxfp4`, and
//! [`repack_hf_block`], the lossless move from the layout Hugging Face checkpoints store
//! (GPT-OSS's `*_blocks` / `*_scales`: byte `i` holds elements `2i` (low nibble) and `2i + 1`
//! (high nibble), the scale in a tensor of its own) into a ggml block, as llama.cpp's converter
//! does it. The codes index the same E2M1 table on both sides, so only nibbles move.

/// Elements per block.
pub const QK: usize = 32;
/// Bytes per block: the exponent and 16 bytes of codes.
pub const BLOCK: usize = 17;

/// ggml's `kvalues_mxfp4`: the E2M1 values, doubled (paired with a halved scale).
const KVALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `GGML_E8M0_TO_FP32_HALF`: `2^(e-128)`, subnormal for `e < 2`.
fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

/// `best_index_mxfp4`: the first code whose value is nearest to `x` at scale `d`.
fn best_index(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (f32::from(KVALUES[0]) * d - x).abs();
    for (i, &k) in KVALUES.iter().enumerate().skip(1) {
        let err = (f32::from(k) * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

/// Quantizes one row (`src.len()` a multiple of 32) into `src.len()/32·17` bytes, as ggml's
/// `quantize_row_mxfp4_ref`.
pub fn quantize_row_mxfp4(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        let amax = x
            .iter()
            .fold(0.0f32, |m, v| if m < v.abs() { v.abs() } else { m });
        // C converts the float to uint8_t through an int (wrapping), not saturating.
        let e = if amax > 0.0 {
            (amax.log2().floor() - 2.0 + 127.0) as i32 as u8
        } else {
            0
        };
        let d = e8m0_to_f32_half(e);
        y[0] = e;
        for j in 0..QK / 2 {
            y[1 + j] = best_index(x[j], d) | (best_index(x[QK / 2 + j], d) << 4);
        }
    }
}

/// Dequantizes one row, as ggml's `dequantize_row_mxfp4`.
pub fn dequantize_row_mxfp4(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK)) {
        let d = e8m0_to_f32_half(b[0]);
        for j in 0..QK / 2 {
            y[j] = f32::from(KVALUES[usize::from(b[1 + j] & 0x0f)]) * d;
            y[j + QK / 2] = f32::from(KVALUES[usize::from(b[1 + j] >> 4)]) * d;
        }
    }
}

/// One ggml block from a Hugging Face MXFP4 block: exponent `scale` and the 16 bytes `codes`
/// holding elements `2i` (low nibble) and `2i + 1` (high nibble) in byte `i`.
pub fn repack_hf_block(scale: u8, codes: &[u8], out: &mut [u8]) {
    let nibble = |k: usize| (codes[k / 2] >> (4 * (k % 2))) & 0x0f;
    out[0] = scale;
    for j in 0..QK / 2 {
        out[1 + j] = nibble(j) | (nibble(j + QK / 2) << 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::TestRng;

    /// Transformers' MXFP4 dequantization (`convert_moe_packed_tensors`): E2M1 table, low
    /// nibble first, `ldexp(value, scale - 127)`.
    fn hf_dequantize(scale: u8, codes: &[u8]) -> Vec<f32> {
        const LUT: [f32; 16] = [
            0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
        ];
        let p = 2f64.powi(i32::from(scale) - 127);
        codes
            .iter()
            .flat_map(|b| [b & 0x0f, b >> 4])
            .map(|q| (f64::from(LUT[usize::from(q)]) * p) as f32)
            .collect()
    }

    #[test]
    fn repacked_blocks_dequantize_to_the_checkpoint_values() {
        let mut rng = TestRng(0x2545_f491_4f6c_dd1d);
        for scale in [0u8, 1, 2, 100, 118, 127, 130, 200, 254] {
            let codes: Vec<u8> = (0..16).map(|_| rng.bits() as u8).collect();
            let mut block = [0u8; BLOCK];
            repack_hf_block(scale, &codes, &mut block);
            let mut got = [0f32; QK];
            dequantize_row_mxfp4(&block, &mut got);
            let want = hf_dequantize(scale, &codes);
            // Equal as numbers (ggml's zero code gives +0 where transformers has -0).
            assert_eq!(got.to_vec(), want, "scale {scale}");
        }
    }

    #[test]
    fn quantize_round_trips_representable_rows() {
        // Values on the grid of a block come back exactly; the exponent is amax's minus 2.
        let x: Vec<f32> = (0..QK).map(|i| f32::from(KVALUES[i % 16]) * 0.25).collect();
        let mut q = [0u8; BLOCK];
        quantize_row_mxfp4(&x, &mut q);
        assert_eq!(q[0], 127 + 1 - 2); // amax = 3 = 1.5·2^1
        let mut y = [0f32; QK];
        dequantize_row_mxfp4(&q, &mut y);
        assert_eq!(x, y);
        quantize_row_mxfp4(&[0.0; QK], &mut q);
        assert_eq!(q, [0u8; BLOCK]);
    }
}
