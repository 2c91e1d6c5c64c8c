//! The original 4- and 5-bit block types: Q4_0, Q4_1, Q5_0, Q5_1 (32 elements
//! per block). Reproduces ggml's `quantize_row_q{4,5}_{0,1}_ref`, including
//! the truncating `(int8_t)(v + 8.5f)` casts and the use of the f32 (not the
//! f16-rounded) scale for the inverse.
//!
//! Layout: `qs[j]` low nibble = element j, high nibble = element j+16; for
//! the 5-bit types the fifth bit of element j is bit j of the LE u32 `qh`.

use super::{f16_bits, read_f16};

const QK: usize = 32;

/// Signed value with the largest magnitude (first one wins on ties).
#[inline]
fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Q4_0: `d = max/−8`, `q = min(15, trunc(x/d + 8.5))`, 18 bytes per block.
pub fn quantize_row_q4_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(18)) {
        let d = signed_absmax(x) / -8.0;
        let id = inverse(d);
        y[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        for j in 0..QK / 2 {
            let x0 = x[j] * id;
            let x1 = x[QK / 2 + j] * id;
            let q0 = ((x0 + 8.5) as i8).min(15) as u8;
            let q1 = ((x1 + 8.5) as i8).min(15) as u8;
            y[2 + j] = q0 | (q1 << 4);
        }
    }
}

/// Q4_1: `d = (max−min)/15`, `m = min`, `q = min(15, trunc((x−min)/d + 0.5))`.
pub fn quantize_row_q4_1(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(20)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        y[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        y[2..4].copy_from_slice(&f16_bits(min).to_le_bytes());
        for j in 0..QK / 2 {
            let x0 = (x[j] - min) * id;
            let x1 = (x[QK / 2 + j] - min) * id;
            let q0 = ((x0 + 0.5) as i8).min(15) as u8;
            let q1 = ((x1 + 0.5) as i8).min(15) as u8;
            y[4 + j] = q0 | (q1 << 4);
        }
    }
}

/// Q5_0: `d = max/−16`, `q = min(31, trunc(x/d + 16.5))`, 22 bytes per block.
pub fn quantize_row_q5_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(22)) {
        let d = signed_absmax(x) / -16.0;
        let id = inverse(d);
        y[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let x0 = x[j] * id;
            let x1 = x[QK / 2 + j] * id;
            let q0 = ((x0 + 16.5) as i8).min(31) as u8;
            let q1 = ((x1 + 16.5) as i8).min(31) as u8;
            y[6 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= u32::from((q0 & 0x10) >> 4) << j;
            qh |= u32::from((q1 & 0x10) >> 4) << (j + QK / 2);
        }
        y[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

/// Q5_1: `d = (max−min)/31`, `m = min`, `q = trunc((x−min)/d + 0.5)`.
pub fn quantize_row_q5_1(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(24)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        y[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        y[2..4].copy_from_slice(&f16_bits(min).to_le_bytes());
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let x0 = (x[j] - min) * id;
            let x1 = (x[QK / 2 + j] - min) * id;
            // C casts to uint8_t without a clamp; gguf-py clips to 0..=31.
            // Both agree for finite data; clamp so hostile values cannot spill.
            let q0 = ((x0 + 0.5) as u8).min(31);
            let q1 = ((x1 + 0.5) as u8).min(31);
            y[8 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= u32::from((q0 & 0x10) >> 4) << j;
            qh |= u32::from((q1 & 0x10) >> 4) << (j + QK / 2);
        }
        y[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

/// Dequantizes a Q4_0 row.
pub fn dequantize_row_q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        for j in 0..QK / 2 {
            y[j] = f32::from(i16::from(b[2 + j] & 0x0f) - 8) * d;
            y[j + QK / 2] = f32::from(i16::from(b[2 + j] >> 4) - 8) * d;
        }
    }
}

/// Dequantizes a Q4_1 row.
pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(20).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        let m = read_f16(&b[2..]);
        for j in 0..QK / 2 {
            y[j] = f32::from(b[4 + j] & 0x0f) * d + m;
            y[j + QK / 2] = f32::from(b[4 + j] >> 4) * d + m;
        }
    }
}

/// Dequantizes a Q5_0 row.
pub fn dequantize_row_q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(22).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        for j in 0..QK / 2 {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            let q0 = (u32::from(b[6 + j] & 0x0f) | h0) as i32 - 16;
            let q1 = (u32::from(b[6 + j] >> 4) | h1) as i32 - 16;
            y[j] = q0 as f32 * d;
            y[j + QK / 2] = q1 as f32 * d;
        }
    }
}

/// Dequantizes a Q5_1 row.
pub fn dequantize_row_q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(24).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        let m = read_f16(&b[2..]);
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        for j in 0..QK / 2 {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            let q0 = u32::from(b[8 + j] & 0x0f) | h0;
            let q1 = u32::from(b[8 + j] >> 4) | h1;
            y[j] = q0 as f32 * d + m;
            y[j + QK / 2] = q1 as f32 * d + m;
        }
    }
}
