//! Q8_0: 32 elements per block, `d: f16` then 32 signed bytes, `y = d·q`.
//! Reproduces ggml's `quantize_row_q8_0_ref` (`roundf`: ties away from zero).

use super::{f16_bits, read_f16};

const QK: usize = 32;
const BLOCK: usize = 34;

/// Quantizes one row (`src.len()` a multiple of 32) into `src.len()/32·34` bytes.
pub fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        let mut amax = 0.0f32;
        for &v in x {
            amax = amax.max(v.abs());
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        y[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        for (q, &v) in y[2..].iter_mut().zip(x) {
            *q = (v * id).round() as i8 as u8;
        }
    }
}

/// Dequantizes one row.
pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        for (v, &q) in y.iter_mut().zip(&b[2..]) {
            *v = f32::from(q as i8) * d;
        }
    }
}
