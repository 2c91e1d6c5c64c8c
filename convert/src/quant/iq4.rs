//! IQ4_NL and IQ4_XS: 4-bit indices into a fixed non-linear table of 16
//! levels (`kvalues_iq4nl`). IQ4_NL has one f16 scale per 32 values; IQ4_XS
//! groups eight such blocks in a 256-value super-block with 6-bit sub-block
//! scales under one f16 scale.
//!
//! A port of ggml's `quantize_row_iq4_nl_impl` as `quantize_iq4_nl` /
//! `quantize_iq4_xs` call it (seven scale trials either side), with or
//! without importance weights, keeping C's f32 expression order.

use super::{f16_bits, kquants::nearest_int, read_f16};

/// ggml's `kvalues_iq4nl`.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

const GROUP_MAX_EPS: f32 = 1e-15;

/// `best_index_int8`: the index of the table value nearest to `x`
/// (the upper one on a tie).
#[inline(always)]
fn best_index(x: f32) -> u8 {
    let val = &KVALUES_IQ4NL;
    if x <= f32::from(val[0]) {
        return 0;
    }
    if x >= f32::from(val[15]) {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < f32::from(val[mav]) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - f32::from(val[mu - 1]) < f32::from(val[mu]) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// One (super-)block: `x` of `SB` values in sub-blocks of 32. Returns the f16
/// scale bits; fills `l` with the level indices and, for `SB > 32`, the
/// packed 6-bit sub-block scales.
#[inline(always)]
fn quantize_block<const SB: usize>(
    x: &[f32; SB],
    quant_weights: Option<&[f32]>,
    l: &mut [u8; SB],
    scales_h: &mut u16,
    scales_l: &mut [u8],
) -> u16 {
    const NTRY: i32 = 7;
    let values = &KVALUES_IQ4NL;
    let v0 = f32::from(values[0]);
    let mut sigma2 = 0.0f32;
    for &v in x.iter() {
        sigma2 += v * v;
    }
    sigma2 *= 2.0 / SB as f32;
    let nb = SB / 32;
    let mut scales = [0.0f32; 8];
    let mut weight = [0.0f32; 32];
    let mut max_scale = 0.0f32;
    let mut amax_scale = 0.0f32;
    for ib in 0..nb {
        let xb = &x[ib * 32..ib * 32 + 32];
        match quant_weights {
            Some(qw) => {
                let qw = &qw[ib * 32..ib * 32 + 32];
                for j in 0..32 {
                    weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
                }
            }
            None => {
                for j in 0..32 {
                    weight[j] = xb[j] * xb[j];
                }
            }
        }
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax < GROUP_MAX_EPS {
            scales[ib] = 0.0;
            continue;
        }
        let mut d = -max / v0;
        let mut id = 1.0 / d;
        let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
        let lb = &mut l[ib * 32..ib * 32 + 32];
        for j in 0..32 {
            let li = best_index(id * xb[j]);
            lb[j] = li;
            let q = f32::from(values[li as usize]);
            let w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        let mut best = d * sumqx;
        for itry in -NTRY..=NTRY {
            id = (itry + i32::from(values[0])) as f32 / max;
            sumqx = 0.0;
            sumq2 = 0.0;
            for j in 0..32 {
                let q = f32::from(values[best_index(id * xb[j]) as usize]);
                let w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        let abs_d = d.abs();
        if abs_d > amax_scale {
            amax_scale = abs_d;
            max_scale = d;
        }
    }
    if nb > 1 {
        *scales_h = 0;
        let d = -max_scale / 32.0;
        let dh = f16_bits(d);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for ib in 0..nb {
            let mut li = nearest_int(id * scales[ib]).clamp(-32, 31);
            let dl = d * li as f32;
            let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            let xb = &x[ib * 32..ib * 32 + 32];
            for j in 0..32 {
                l[ib * 32 + j] = best_index(idl * xb[j]);
            }
            li += 32;
            let (l_l, l_h) = ((li & 0xf) as u8, (li >> 4) as u16);
            if ib % 2 == 0 {
                scales_l[ib / 2] = l_l;
            } else {
                scales_l[ib / 2] |= l_l << 4;
            }
            *scales_h |= l_h << (2 * (ib % 8));
        }
        dh
    } else {
        let id = if scales[0] != 0.0 {
            1.0 / scales[0]
        } else {
            0.0
        };
        for j in 0..SB {
            l[j] = best_index(id * x[j]);
        }
        f16_bits(scales[0])
    }
}

fn pack(l: &[u8], q4: &mut [u8]) {
    for i in 0..l.len() / 32 {
        for j in 0..16 {
            q4[16 * i + j] = l[32 * i + j] | (l[32 * i + 16 + j] << 4);
        }
    }
}

/// Quantizes one row to IQ4_NL (18 bytes per 32 values), optionally with
/// importance weights (one per column).
pub fn quantize_row_iq4_nl(src: &[f32], dst: &mut [u8], quant_weights: Option<&[f32]>) {
    for (ib, (x, out)) in src
        .chunks_exact(32)
        .zip(dst.chunks_exact_mut(18))
        .enumerate()
    {
        let x: &[f32; 32] = x.try_into().expect("32 values");
        let qw = quant_weights.map(|w| &w[ib * 32..ib * 32 + 32]);
        let mut l = [0u8; 32];
        let (mut h, mut sl) = (0u16, [0u8; 0]);
        let d = quantize_block::<32>(x, qw, &mut l, &mut h, &mut sl);
        out[..2].copy_from_slice(&d.to_le_bytes());
        pack(&l, &mut out[2..18]);
    }
}

/// Quantizes one row to IQ4_XS (136 bytes per 256 values), optionally with
/// importance weights (one per column).
pub fn quantize_row_iq4_xs(src: &[f32], dst: &mut [u8], quant_weights: Option<&[f32]>) {
    for (ib, (x, out)) in src
        .chunks_exact(256)
        .zip(dst.chunks_exact_mut(136))
        .enumerate()
    {
        let x: &[f32; 256] = x.try_into().expect("256 values");
        let qw = quant_weights.map(|w| &w[ib * 256..ib * 256 + 256]);
        let mut l = [0u8; 256];
        let mut h = 0u16;
        let mut sl = [0u8; 4];
        let d = quantize_block::<256>(x, qw, &mut l, &mut h, &mut sl);
        out[..2].copy_from_slice(&d.to_le_bytes());
        out[2..4].copy_from_slice(&h.to_le_bytes());
        out[4..8].copy_from_slice(&sl);
        pack(&l, &mut out[8..136]);
    }
}

/// `dequantize_row_iq4_nl`.
pub fn dequantize_row_iq4_nl(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(32)) {
        let d = read_f16(b);
        for j in 0..16 {
            y[j] = d * f32::from(KVALUES_IQ4NL[(b[2 + j] & 0xf) as usize]);
            y[j + 16] = d * f32::from(KVALUES_IQ4NL[(b[2 + j] >> 4) as usize]);
        }
    }
}

/// `dequantize_row_iq4_xs`.
pub fn dequantize_row_iq4_xs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(136).zip(dst.chunks_exact_mut(256)) {
        let d = read_f16(b);
        let h = u16::from_le_bytes([b[2], b[3]]);
        for ib in 0..8 {
            let ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xf) as i32
                | ((((h >> (2 * ib)) & 3) as i32) << 4);
            let dl = d * (ls - 32) as f32;
            let qs = &b[8 + 16 * ib..8 + 16 * ib + 16];
            for j in 0..16 {
                y[32 * ib + j] = dl * f32::from(KVALUES_IQ4NL[(qs[j] & 0xf) as usize]);
                y[32 * ib + j + 16] = dl * f32::from(KVALUES_IQ4NL[(qs[j] >> 4) as usize]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_index_picks_nearest_upper_on_ties() {
        assert_eq!(best_index(-200.0), 0);
        assert_eq!(best_index(200.0), 15);
        assert_eq!(best_index(0.0), 8);
        assert_eq!(best_index(-4.5), 8); // halfway between -10 and 1: the upper one
        assert_eq!(best_index(-4.6), 7);
    }

    #[test]
    fn round_trip_is_close() {
        let mut rng = crate::quant::TestRng(7);
        let x: Vec<f32> = (0..512).map(|_| rng.centred()).collect();
        let rel = |y: &[f32]| {
            x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()
                / x.iter().map(|a| a * a).sum::<f32>()
        };
        let mut y = vec![0.0f32; 512];
        let mut b = vec![0u8; 16 * 18];
        quantize_row_iq4_nl(&x, &mut b, None);
        dequantize_row_iq4_nl(&b, &mut y);
        assert!(rel(&y) < 0.01, "IQ4_NL error {}", rel(&y));
        let mut b = vec![0u8; 2 * 136];
        quantize_row_iq4_xs(&x, &mut b, None);
        dequantize_row_iq4_xs(&b, &mut y);
        assert!(rel(&y) < 0.01, "IQ4_XS error {}", rel(&y));
    }
}
