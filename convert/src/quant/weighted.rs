//! Importance-weighted quantizers: what `llama-quantize --imatrix` runs.
//!
//! With an importance matrix, ggml's `quantize_q*` call `quantize_row_*_impl`
//! instead of the reference rows: every element's error is weighted by its
//! column's mean squared activation (`qw`), scaled by `sqrt(σ² + x²)`. This
//! is a port of those functions and their helpers (`make_qx_quants` with
//! weights, `make_qkx3_quants`, `make_qp_quants`) for Q4_0, Q4_1, Q5_0, Q5_1
//! and Q2_K…Q6_K, keeping C's f32 expression order and its integer
//! conversions (levels stored in a `uint8_t` wrap as they do in C). Q8_0
//! ignores the matrix, as in ggml; IQ4_NL/IQ4_XS take it in [`super::iq4`].

use super::kquants::{
    get_scale_min_k4, nearest_int, pack_scale_min_k4, q3_scale, quantize_q6_k_with,
};
use super::{QK_K, f16_bits, f16_to_f32};

const GROUP_MAX_EPS: f32 = 1e-15;

/// `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw)`: levels `l + nmax` in `l_out`.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8], qw: &[f32]) -> f32 {
    let n = x.len();
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1) as f32;
            let w = qw[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let store = |iscale: f32, l_out: &mut [i8]| {
        for i in 0..n {
            l_out[i] = (nmax + nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1)) as i8;
        }
    };
    let iscale = -nmaxf / max;
    store(iscale, l_out);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmaxf + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(iscale, l_out);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `make_qkx3_quants(n, nmax, x, weights, L, &the_min, Laux, rmin, rdelta, nstep, false)`;
/// returns `(scale, the_min)`.
#[allow(clippy::too_many_arguments)]
fn make_qkx3_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_mad += weights[i] * (diff * diff);
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let (w, lf) = (weights[i], l as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0.0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                mad += weights[i] * (diff * diff);
            }
            if mad < best_mad {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_qp_quants(n, nmax, x, L, quant_weights)`: non-negative levels for
/// sub-block scales and minimums.
fn make_qp_quants(nmax: i32, x: &[f32], l_out: &mut [u8], qw: &[f32]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    for &v in x {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / max;
    for i in 0..n {
        l_out[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * f32::from(l_out[i]);
        best_mse += qw[i] * diff * diff;
    }
    for is in -4i32..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1 * is as f32 + nmaxf) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * l as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax);
        l_out[i] = l as u8;
        let w = qw[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = qw[i];
            let li = f32::from(l_out[i]);
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != i32::from(l_out[i]) {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Σx² over `x`, in order.
fn sum_sq(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// `qw[l] * sqrtf(sigma2 + x[l]*x[l])`.
fn weigh(qw: &[f32], x: &[f32], sigma2: f32, out: &mut [f32]) {
    for l in 0..x.len() {
        out[l] = qw[l] * (sigma2 + x[l] * x[l]).sqrt();
    }
}

/// `quantize_row_q4_0_impl` (18 bytes per 32).
pub fn quantize_row_q4_0(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    let sigma2 = sum_sq(x) / x.len() as f32;
    let mut w = [0.0f32; 32];
    let mut l = [0i8; 32];
    for (ib, y) in dst.chunks_exact_mut(18).enumerate() {
        let xb = &x[32 * ib..32 * ib + 32];
        weigh(&qw[32 * ib..32 * ib + 32], xb, sigma2, &mut w);
        let d = make_qx_quants(8, xb, &mut l, &w);
        y[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        for j in 0..16 {
            y[2 + j] = (l[j] as u8) | ((l[j + 16] as u8) << 4);
        }
    }
}

/// `quantize_row_q5_0_impl` (22 bytes per 32).
pub fn quantize_row_q5_0(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    let sigma2 = sum_sq(x) / x.len() as f32;
    let mut w = [0.0f32; 32];
    let mut l = [0i8; 32];
    for (ib, y) in dst.chunks_exact_mut(22).enumerate() {
        let xb = &x[32 * ib..32 * ib + 32];
        weigh(&qw[32 * ib..32 * ib + 32], xb, sigma2, &mut w);
        let d = make_qx_quants(16, xb, &mut l, &w);
        y[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        pack5(&l.map(|v| v as u8), &mut y[2..]);
    }
}

/// Packs 32 five-bit levels as Q5_0/Q5_1 do: `qh` (u32) then `qs[16]`.
fn pack5(l: &[u8; 32], out: &mut [u8]) {
    let mut qh = 0u32;
    for j in 0..16 {
        let (a, b) = (l[j], l[j + 16]);
        out[4 + j] = (a & 0x0f) | ((b & 0x0f) << 4);
        qh |= u32::from((a & 0x10) >> 4) << j;
        qh |= u32::from((b & 0x10) >> 4) << (j + 16);
    }
    out[..4].copy_from_slice(&qh.to_le_bytes());
}

/// `quantize_row_q4_1_impl` / `quantize_row_q5_1_impl`.
fn quantize_row_x_1(x: &[f32], dst: &mut [u8], qw: &[f32], nmax: i32, bytes: usize) {
    let sigma2 = sum_sq(x) / x.len() as f32;
    let mut w = [0.0f32; 32];
    let mut l = [0u8; 32];
    for (ib, y) in dst.chunks_exact_mut(bytes).enumerate() {
        let xb = &x[32 * ib..32 * ib + 32];
        weigh(&qw[32 * ib..32 * ib + 32], xb, sigma2, &mut w);
        let (d, min) = make_qkx3_quants(nmax, xb, &w, &mut l, -0.9, 0.05, 36);
        y[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        y[2..4].copy_from_slice(&f16_bits(-min).to_le_bytes());
        if nmax == 15 {
            for j in 0..16 {
                y[4 + j] = l[j] | (l[j + 16] << 4);
            }
        } else {
            pack5(&l, &mut y[4..]);
        }
    }
}

/// `quantize_row_q4_1_impl` (20 bytes per 32).
pub fn quantize_row_q4_1(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    quantize_row_x_1(x, dst, qw, 15, 20);
}

/// `quantize_row_q5_1_impl` (24 bytes per 32).
pub fn quantize_row_q5_1(x: &[f32], dst: &mut [u8], qw: &[f32]) {
    quantize_row_x_1(x, dst, qw, 31, 24);
}

/// `quantize_row_q2_K_impl` (84 bytes per 256).
pub fn quantize_row_q2_k(src: &[f32], dst: &mut [u8], qw_row: &[f32]) {
    let mut l = [0u8; QK_K];
    for (i, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(84))
        .enumerate()
    {
        let qw_block = &qw_row[QK_K * i..QK_K * i + QK_K];
        let mut sw = [0.0f32; 16];
        let mut mins = [0.0f32; 16];
        let mut scales = [0.0f32; 16];
        let mut weight = [0.0f32; 16];
        let sigma2 = sum_sq(x) / QK_K as f32;
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            weigh(&qw_block[16 * j..16 * j + 16], xs, sigma2, &mut weight);
            for &wl in &weight {
                sw[j] += wl;
            }
            let (s, m) =
                make_qkx3_quants(3, xs, &weight, &mut l[16 * j..16 * j + 16], -0.9, 0.05, 36);
            scales[j] = s;
            mins[j] = m;
        }
        let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
        let dm = make_qp_quants(15, &scales, &mut ls, &sw);
        let mm = make_qp_quants(15, &mins, &mut lm, &sw);
        let (dh, mh) = (f16_bits(dm), f16_bits(mm));
        y[80..82].copy_from_slice(&dh.to_le_bytes());
        y[82..84].copy_from_slice(&mh.to_le_bytes());
        let (dm, mm) = (f16_to_f32(dh), f16_to_f32(mh));
        for j in 0..16 {
            y[j] = ls[j] | (lm[j] << 4);
        }
        for j in 0..16 {
            let d = dm * f32::from(y[j] & 0xf);
            if d == 0.0 {
                continue;
            }
            let m = mm * f32::from(y[j] >> 4);
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int((x[16 * j + ii] + m) / d).clamp(0, 3) as u8;
            }
        }
        for h in 0..2 {
            let lb = &l[128 * h..];
            for k in 0..32 {
                y[16 + 32 * h + k] =
                    lb[k] | (lb[k + 32] << 2) | (lb[k + 64] << 4) | (lb[k + 96] << 6);
            }
        }
    }
}

/// `quantize_row_q3_K_impl` (110 bytes per 256).
pub fn quantize_row_q3_k(src: &[f32], dst: &mut [u8], qw_row: &[f32]) {
    let mut l = [0i8; QK_K];
    for (i, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(110))
        .enumerate()
    {
        let qw_block = &qw_row[QK_K * i..QK_K * i + QK_K];
        let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
        let mut scales = [0.0f32; 16];
        let mut sw = [0.0f32; 16];
        let mut weight = [0.0f32; 16];
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            weigh(&qw_block[16 * j..16 * j + 16], xs, sigma2, &mut weight);
            let mut sumw = 0.0f32;
            for &wl in &weight {
                sumw += wl;
            }
            sw[j] = sumw;
            scales[j] = make_qx_quants(4, xs, &mut l[16 * j..16 * j + 16], &weight);
        }
        let (hmask, rest) = y.split_at_mut(32);
        let (qs, rest) = rest.split_at_mut(64);
        let (sc, dbytes) = rest.split_at_mut(12);
        sc.fill(0);
        let mut ls = [0i8; 16];
        let d_block = make_qx_quants(32, &scales, &mut ls, &sw);
        for j in 0..16 {
            let v = ls[j] as u8;
            if j < 8 {
                sc[j] = v & 0xf;
            } else {
                sc[j - 8] |= (v & 0xf) << 4;
            }
            sc[j % 4 + 8] |= (v >> 4) << (2 * (j / 4));
        }
        let d = f16_bits(d_block);
        dbytes.copy_from_slice(&d.to_le_bytes());
        for j in 0..16 {
            let dj = f16_to_f32(d) * f32::from(q3_scale(sc, j));
            if dj == 0.0 {
                continue;
            }
            for ii in 0..16 {
                l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dj).clamp(-4, 3) + 4) as i8;
            }
        }
        hmask.fill(0);
        let (mut m, mut hm) = (0usize, 1u8);
        for lj in l.iter_mut() {
            if *lj > 3 {
                hmask[m] |= hm;
                *lj -= 4;
            }
            m += 1;
            if m == QK_K / 8 {
                m = 0;
                hm = hm.wrapping_shl(1);
            }
        }
        for h in 0..2 {
            let lb = &l[128 * h..];
            for k in 0..32 {
                qs[32 * h + k] = (lb[k] as u8)
                    | ((lb[k + 32] as u8) << 2)
                    | ((lb[k + 64] as u8) << 4)
                    | ((lb[k + 96] as u8) << 6);
            }
        }
    }
}

/// The sub-block search of `quantize_row_q4_K_impl` / `q5_K_impl`, then
/// the requantization with the f16 scales; returns the levels.
fn qkx3_super_block(x: &[f32], qw: &[f32], nmax: i32, y: &mut [u8]) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut weights = [0.0f32; 32];
    let (mut sw, mut mins, mut scales) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        weigh(&qw[32 * j..32 * j + 32], xs, sigma2, &mut weights);
        let mut sumw = 0.0f32;
        for &wl in &weights {
            sumw += wl;
        }
        sw[j] = sumw;
        let (s, m) = make_qkx3_quants(
            nmax,
            xs,
            &weights,
            &mut l[32 * j..32 * j + 32],
            -0.9,
            0.05,
            36,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    if nmax == 31 {
        // Q5_K clamps the 6-bit scales; Q4_K does not.
        for v in ls.iter_mut().chain(lm.iter_mut()) {
            *v = (*v).min(63);
        }
    }
    pack_scale_min_k4(&ls, &lm, &mut y[4..16]);
    let (dh, mh) = (f16_bits(d_block), f16_bits(m_block));
    y[..2].copy_from_slice(&dh.to_le_bytes());
    y[2..4].copy_from_slice(&mh.to_le_bytes());
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &y[4..16]);
        let d = f16_to_f32(dh) * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = f16_to_f32(mh) * f32::from(m);
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    l
}

/// `quantize_row_q4_K_impl` (144 bytes per 256).
pub fn quantize_row_q4_k(src: &[f32], dst: &mut [u8], qw_row: &[f32]) {
    for (i, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(144))
        .enumerate()
    {
        let l = qkx3_super_block(x, &qw_row[QK_K * i..QK_K * i + QK_K], 15, y);
        for c in 0..4 {
            for k in 0..32 {
                y[16 + 32 * c + k] = l[64 * c + k] | (l[64 * c + 32 + k] << 4);
            }
        }
    }
}

/// `quantize_row_q5_K_impl` (176 bytes per 256).
pub fn quantize_row_q5_k(src: &[f32], dst: &mut [u8], qw_row: &[f32]) {
    for (i, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(176))
        .enumerate()
    {
        let l = qkx3_super_block(x, &qw_row[QK_K * i..QK_K * i + QK_K], 31, y);
        let (qh, ql) = y[16..].split_at_mut(32);
        qh.fill(0);
        let (mut m1, mut m2) = (1u8, 2u8);
        for c in 0..4 {
            for k in 0..32 {
                let mut l1 = l[64 * c + k];
                if l1 > 15 {
                    l1 -= 16;
                    qh[k] |= m1;
                }
                let mut l2 = l[64 * c + 32 + k];
                if l2 > 15 {
                    l2 -= 16;
                    qh[k] |= m2;
                }
                ql[32 * c + k] = l1 | (l2 << 4);
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

/// `quantize_row_q6_K_impl` (210 bytes per 256): the importance weights
/// replace `x²` in the sub-block search, without the `σ²` term.
pub fn quantize_row_q6_k(src: &[f32], dst: &mut [u8], qw_row: &[f32]) {
    quantize_q6_k_with(src, dst, |start, x, l| {
        make_qx_quants(32, x, l, &qw_row[start..start + 16])
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{GgmlType, TestRng};

    /// Uniform importance weights change the search but must still give a
    /// faithful row; zero rows stay zero.
    #[test]
    fn weighted_rows_round_trip() {
        let mut rng = TestRng(99);
        let x: Vec<f32> = (0..512).map(|_| rng.centred()).collect();
        let qw: Vec<f32> = (0..512).map(|i| 0.5 + (i % 7) as f32).collect();
        type Kernel = fn(&[f32], &mut [u8], &[f32]);
        let kernels: [(GgmlType, Kernel, f32); 9] = [
            (GgmlType::Q4_0, quantize_row_q4_0, 0.02),
            (GgmlType::Q4_1, quantize_row_q4_1, 0.02),
            (GgmlType::Q5_0, quantize_row_q5_0, 0.005),
            (GgmlType::Q5_1, quantize_row_q5_1, 0.005),
            (GgmlType::Q2K, quantize_row_q2_k, 0.2),
            (GgmlType::Q3K, quantize_row_q3_k, 0.06),
            (GgmlType::Q4K, quantize_row_q4_k, 0.02),
            (GgmlType::Q5K, quantize_row_q5_k, 0.005),
            (GgmlType::Q6K, quantize_row_q6_k, 0.002),
        ];
        for (ty, k, bound) in kernels {
            let mut b = vec![0u8; ty.row_size(512).unwrap()];
            k(&x, &mut b, &qw);
            let mut y = vec![0.0f32; 512];
            ty.dequantize_row(&b, &mut y);
            let err: f32 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                / x.iter().map(|a| a * a).sum::<f32>();
            assert!(err < bound, "{ty}: relative squared error {err}");
            let zeros = vec![0.0f32; 512];
            k(&zeros, &mut b, &qw);
            ty.dequantize_row(&b, &mut y);
            assert!(y.iter().all(|v| *v == 0.0), "{ty}: zero row");
        }
    }
}
