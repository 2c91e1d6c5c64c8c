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
            *q = round_half_away(v * id) as i8 as u8;
        }
    }
}

/// `roundf` (ties away from zero) for |x| < 2^23 without a libm call: baseline x86-64 has no
/// rounding instruction, and `f32::round` there is a function call per value. Truncation is
/// exact and `x - trunc(x)` is exact in this range, so the result equals `x.round()`.
#[inline(always)]
fn round_half_away(x: f32) -> i32 {
    let t = x as i32;
    let frac = x - t as f32;
    if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
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

#[cfg(test)]
mod round_tests {
    use super::round_half_away;

    #[test]
    fn equals_round_everywhere_in_range() {
        let mut x = -130.0f32;
        while x <= 130.0 {
            assert_eq!(round_half_away(x), x.round() as i32, "{x}");
            for y in [x.next_up(), x.next_down()] {
                assert_eq!(round_half_away(y), y.round() as i32, "{y}");
            }
            x += 0.125;
        }
        for x in [
            0.49999997f32,
            -0.49999997,
            0.5,
            -0.5,
            126.5,
            -126.5,
            0.0,
            -0.0,
        ] {
            assert_eq!(round_half_away(x), x.round() as i32, "{x}");
        }
    }
}
