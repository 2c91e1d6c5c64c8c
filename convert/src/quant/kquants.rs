//! K-quants: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (256-element super-blocks with
//! 6-bit or 4-bit sub-block scales).
//!
//! A line-by-line port of ggml's `quantize_row_q*_K_ref` and helpers
//! (`make_qkx2_quants`, `make_qx_quants`, `make_q3_quants`, `nearest_int`),
//! the no-imatrix path of `llama-quantize`. The f32 expression shapes are
//! kept as in C (`w*l*l`, `(x + dm)/d`, …) because they decide ties; ints are
//! converted to f32 exactly where C's usual arithmetic conversions do.

use super::{QK_K, f16_bits, f16_to_f32, read_f16};

const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round half to even via the 1.5·2²³ trick. Matches C
/// bit for bit (including its garbage for |f| > 4194303, without UB here).
#[inline(always)]
pub fn nearest_int(f: f32) -> i32 {
    let val = f + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// `make_qkx2_quants`: weighted asymmetric search; returns `(scale, -min)`.
///
/// Generic over the sub-block length so that every index is provably in
/// bounds; the f32 sums stay strictly sequential, as in C.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn make_qkx2_quants<const N: usize>(
    nmax: i32,
    x: &[f32; N],
    weights: &[f32; N],
    l_out: &mut [u8; N],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..N {
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
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..N {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let mut diff = scale * l as f32 + min - x[i];
        diff = if use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; N];
    let mut prev = [u8::MAX; N];
    let mut lf = [0.0f32; N];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        // Element-wise part first (vectorizable), then the ordered sums.
        for i in 0..N {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            lf[i] = l as f32;
        }
        // Same levels as the previous step: same sums, same error, and that
        // candidate was already accepted or rejected, so nothing can change.
        if laux == prev {
            continue;
        }
        prev = laux;
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..N {
            let w = weights[i];
            sum_l += w * lf[i];
            sum_l2 += w * lf[i] * lf[i];
            sum_xl += w * lf[i] * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..N {
                let mut diff = this_scale * lf[i] + this_min - x[i];
                diff = if use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                *l_out = laux;
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_qx_quants` with `rmse_type = 1` and no importance weights
/// (weights `x²`), as Q6_K uses it. `l_out` receives `l + nmax`.
#[inline(always)]
fn make_qx_quants_rmse1(nmax: i32, x: &[f32; 16], l_out: &mut [i8; 16]) -> f32 {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut w = [0.0f32; 16];
    for i in 0..16 {
        w[i] = x[i] * x[i];
    }
    let mut lf = [0.0f32; 16];
    let quantize = |iscale: f32, lf: &mut [f32; 16]| {
        for i in 0..16 {
            lf[i] = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1) as f32;
        }
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for i in 0..16 {
            sumlx += w[i] * x[i] * lf[i];
            suml2 += w[i] * lf[i] * lf[i];
        }
        (sumlx, suml2)
    };
    let store = |lf: &[f32; 16], l_out: &mut [i8; 16]| {
        for i in 0..16 {
            l_out[i] = (lf[i] as i32 + nmax) as i8;
        }
    };
    let (sumlx, suml2) = quantize(-nmaxf / max, &mut lf);
    store(&lf, l_out);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmaxf + 0.1 * is as f32) / max;
        let (sumlx, suml2) = quantize(iscale, &mut lf);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(&lf, l_out);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `make_q3_quants(n, nmax, x, L, do_rmse = true)`. `l_out` receives `l + nmax`.
#[inline(always)]
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
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
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_out[i] = l as i8;
        let w = x[i] * x[i];
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = x[i] * x[i];
            let li = f32::from(l_out[i]);
            let mut slx = sumlx - w * x[i] * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(l_out[i]) {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
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
    for l in l_out[..n].iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

#[inline(always)]
pub(super) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs eight 6-bit (scale, min) pairs into the 12-byte K4 layout.
#[inline(always)]
pub(super) fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8], out: &mut [u8]) {
    out[..12].fill(0);
    for j in 0..8 {
        let (s, m) = (ls[j], lm[j]);
        if j < 4 {
            out[j] = s;
            out[j + 4] = m;
        } else {
            out[j + 4] = (s & 0xf) | ((m & 0xf) << 4);
            out[j - 4] |= (s >> 4) << 6;
            out[j] |= (m >> 4) << 6;
        }
    }
}

/// Sub-block (scale, min) search shared by Q4_K and Q5_K.
#[inline(always)]
fn qkx_subblocks(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    l: &mut [u8; QK_K],
    out_scales: &mut [u8],
) -> (u16, u16) {
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let mut weights = [0.0f32; 32];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..8 {
        let xs: &[f32; 32] = x[32 * j..32 * j + 32].try_into().expect("32 elements");
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(
            nmax,
            xs,
            &weights,
            (&mut l[32 * j..32 * j + 32])
                .try_into()
                .expect("32 elements"),
            rmin,
            0.1,
            nstep,
            false,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    pack_scale_min_k4(&ls, &lm, out_scales);
    let d = f16_bits(max_scale / 63.0);
    let dmin = f16_bits(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, out_scales);
        let dj = f16_to_f32(d) * f32::from(sc);
        if dj == 0.0 {
            continue;
        }
        let dm = f16_to_f32(dmin) * f32::from(m);
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, nmax);
            l[32 * j + ii] = q as u8;
        }
    }
    (d, dmin)
}

/// Q4_K: 144 bytes per 256 elements.
#[inline(always)]
pub fn quantize_row_q4_k(src: &[f32], dst: &mut [u8]) {
    let mut l = [0u8; QK_K];
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(144)) {
        let (d, dmin) = qkx_subblocks(x, 15, -1.0, 20, &mut l, &mut y[4..16]);
        y[0..2].copy_from_slice(&d.to_le_bytes());
        y[2..4].copy_from_slice(&dmin.to_le_bytes());
        let qs = &mut y[16..144];
        for c in 0..4 {
            for i in 0..32 {
                qs[32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
            }
        }
    }
}

/// Q5_K: 176 bytes per 256 elements.
#[inline(always)]
pub fn quantize_row_q5_k(src: &[f32], dst: &mut [u8]) {
    let mut l = [0u8; QK_K];
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(176)) {
        let (d, dmin) = qkx_subblocks(x, 31, -0.5, 15, &mut l, &mut y[4..16]);
        y[0..2].copy_from_slice(&d.to_le_bytes());
        y[2..4].copy_from_slice(&dmin.to_le_bytes());
        let (qh, qs) = y[16..176].split_at_mut(32);
        qh.fill(0);
        let (mut m1, mut m2) = (1u8, 2u8);
        for c in 0..4 {
            for j in 0..32 {
                let mut l1 = l[64 * c + j];
                if l1 > 15 {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                let mut l2 = l[64 * c + 32 + j];
                if l2 > 15 {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                qs[32 * c + j] = l1 | (l2 << 4);
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

/// Q6_K: 210 bytes per 256 elements.
#[inline(always)]
pub fn quantize_row_q6_k(src: &[f32], dst: &mut [u8]) {
    quantize_q6_k_with(src, dst, |_, x, l| {
        make_qx_quants_rmse1(
            32,
            x.try_into().expect("16 elements"),
            l.try_into().expect("16 elements"),
        )
    });
}

/// Q6_K with the sub-block search `sub(first_element, x16, levels16) -> scale` (levels offset
/// by 32): the plain `x²`-weighted one, or the importance-weighted one.
#[inline(always)]
pub(super) fn quantize_q6_k_with(
    src: &[f32],
    dst: &mut [u8],
    sub: impl Fn(usize, &[f32], &mut [i8]) -> f32,
) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    for (ib_row, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(210))
        .enumerate()
    {
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for ib in 0..16 {
            let s = sub(
                ib_row * QK_K + 16 * ib,
                &x[16 * ib..16 * ib + 16],
                &mut l[16 * ib..16 * ib + 16],
            );
            scales[ib] = s;
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            y.fill(0);
            continue;
        }
        let iscale = -128.0 / max_scale;
        let d = f16_bits(1.0 / iscale);
        y[208..210].copy_from_slice(&d.to_le_bytes());
        let mut sc = [0i8; 16];
        for ib in 0..16 {
            sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
            y[192 + ib] = sc[ib] as u8;
        }
        for j in 0..16 {
            let dj = f16_to_f32(d) * f32::from(sc[j]);
            if dj == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(x[16 * j + ii] / dj).clamp(-32, 31);
                l[16 * j + ii] = (q + 32) as i8;
            }
        }
        let (ql, rest) = y.split_at_mut(128);
        let qh = &mut rest[..64];
        for h in 0..2 {
            let lb = &l[128 * h..128 * h + 128];
            let ql = &mut ql[64 * h..64 * h + 64];
            let qh = &mut qh[32 * h..32 * h + 32];
            for i in 0..32 {
                let (a, b, c, e) = (
                    lb[i] as u8,
                    lb[i + 32] as u8,
                    lb[i + 64] as u8,
                    lb[i + 96] as u8,
                );
                ql[i] = (a & 0xf) | ((c & 0xf) << 4);
                ql[i + 32] = (b & 0xf) | ((e & 0xf) << 4);
                qh[i] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
            }
        }
    }
}

/// Q2_K: 84 bytes per 256 elements.
#[inline(always)]
pub fn quantize_row_q2_k(src: &[f32], dst: &mut [u8]) {
    const Q4SCALE: f32 = 15.0;
    let mut l = [0u8; QK_K];
    let mut weights = [0.0f32; 16];
    let mut scales = [0.0f32; 16];
    let mut mins = [0.0f32; 16];
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(84)) {
        let mut max_scale = 0.0f32;
        let mut max_min = 0.0f32;
        for j in 0..16 {
            let xs: &[f32; 16] = x[16 * j..16 * j + 16].try_into().expect("16 elements");
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            let (s, m) = make_qkx2_quants(
                3,
                xs,
                &weights,
                (&mut l[16 * j..16 * j + 16])
                    .try_into()
                    .expect("16 elements"),
                -0.5,
                0.1,
                15,
                true,
            );
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }
        let (sc, rest) = y.split_at_mut(16);
        let d = if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for j in 0..16 {
                sc[j] = nearest_int(iscale * scales[j]) as u8;
            }
            f16_bits(max_scale / Q4SCALE)
        } else {
            sc.fill(0);
            f16_bits(0.0)
        };
        let dmin = if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for j in 0..16 {
                sc[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
            }
            f16_bits(max_min / Q4SCALE)
        } else {
            f16_bits(0.0)
        };
        for j in 0..16 {
            let dj = f16_to_f32(d) * f32::from(sc[j] & 0xf);
            if dj == 0.0 {
                continue;
            }
            let dm = f16_to_f32(dmin) * f32::from(sc[j] >> 4);
            for ii in 0..16 {
                let q = nearest_int((x[16 * j + ii] + dm) / dj).clamp(0, 3);
                l[16 * j + ii] = q as u8;
            }
        }
        let qs = &mut rest[..64];
        for h in 0..2 {
            let lb = &l[128 * h..];
            for i in 0..32 {
                qs[32 * h + i] = lb[i] | (lb[i + 32] << 2) | (lb[i + 64] << 4) | (lb[i + 96] << 6);
            }
        }
        rest[64..66].copy_from_slice(&d.to_le_bytes());
        rest[66..68].copy_from_slice(&dmin.to_le_bytes());
    }
}

/// Decodes the 16 signed 6-bit Q3_K scales (already minus 32).
#[inline(always)]
pub(super) fn q3_scale(scales: &[u8], j: usize) -> i8 {
    let lo = if j < 8 {
        scales[j] & 0xf
    } else {
        scales[j - 8] >> 4
    };
    let hi = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    ((lo | (hi << 4)) as i8) - 32
}

/// Q3_K: 110 bytes per 256 elements.
#[inline(always)]
pub fn quantize_row_q3_k(src: &[f32], dst: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(110)) {
        let mut max_scale = 0.0f32;
        let mut amax = 0.0f32;
        for j in 0..16 {
            scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            let s = scales[j].abs();
            if s > amax {
                amax = s;
                max_scale = scales[j];
            }
        }
        let (hmask, rest) = y.split_at_mut(32);
        let (qs, rest) = rest.split_at_mut(64);
        let (sc, dbytes) = rest.split_at_mut(12);
        sc.fill(0);
        let d;
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for j in 0..16 {
                let v = nearest_int(iscale * scales[j]) as i8;
                let v = (v.clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    sc[j] = v & 0xf;
                } else {
                    sc[j - 8] |= (v & 0xf) << 4;
                }
                sc[j % 4 + 8] |= (v >> 4) << (2 * (j / 4));
            }
            d = f16_bits(1.0 / iscale);
        } else {
            d = f16_bits(0.0);
        }
        dbytes.copy_from_slice(&d.to_le_bytes());
        for j in 0..16 {
            let dj = f16_to_f32(d) * f32::from(q3_scale(sc, j));
            if dj == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(x[16 * j + ii] / dj).clamp(-4, 3);
                l[16 * j + ii] = (q + 4) as i8;
            }
        }
        hmask.fill(0);
        let mut m = 0usize;
        let mut hm = 1u8;
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
            for i in 0..32 {
                qs[32 * h + i] = (lb[i] as u8)
                    | ((lb[i + 32] as u8) << 2)
                    | ((lb[i + 64] as u8) << 4)
                    | ((lb[i + 96] as u8) << 6);
            }
        }
    }
}

/// Dequantizes a Q2_K row.
pub fn dequantize_row_q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(84).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(&b[80..]);
        let min = read_f16(&b[82..]);
        let mut is = 0;
        let mut out = 0;
        for h in 0..2 {
            let q = &b[16 + 32 * h..16 + 32 * h + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let sc = b[is];
                    is += 1;
                    let dl = d * f32::from(sc & 0xf);
                    let ml = min * f32::from(sc >> 4);
                    for i in 0..16 {
                        y[out] = dl * f32::from((q[16 * half + i] >> shift) & 3) - ml;
                        out += 1;
                    }
                }
            }
        }
    }
}

/// Dequantizes a Q3_K row.
pub fn dequantize_row_q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(110).zip(dst.chunks_exact_mut(QK_K)) {
        let hm = &b[..32];
        let sc = &b[96..108];
        let d_all = read_f16(&b[108..]);
        let mut is = 0;
        let mut out = 0;
        let mut m = 1u8;
        for h in 0..2 {
            let q = &b[32 + 32 * h..64 + 32 * h];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let dl = d_all * f32::from(q3_scale(sc, is));
                    is += 1;
                    for i in 0..16 {
                        let k = 16 * half + i;
                        let v = ((q[k] >> shift) & 3) as i8 - if hm[k] & m != 0 { 0 } else { 4 };
                        y[out] = dl * f32::from(v);
                        out += 1;
                    }
                }
                m = m.wrapping_shl(1);
            }
        }
    }
}

/// Dequantizes a Q4_K row.
pub fn dequantize_row_q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(144).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(b);
        let min = read_f16(&b[2..]);
        let sc = &b[4..16];
        for c in 0..4 {
            let q = &b[16 + 32 * c..48 + 32 * c];
            let (s1, m1) = get_scale_min_k4(2 * c, sc);
            let (s2, m2) = get_scale_min_k4(2 * c + 1, sc);
            let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
            for i in 0..32 {
                y[64 * c + i] = d1 * f32::from(q[i] & 0xf) - m1;
                y[64 * c + 32 + i] = d2 * f32::from(q[i] >> 4) - m2;
            }
        }
    }
}

/// Dequantizes a Q5_K row.
pub fn dequantize_row_q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(176).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(b);
        let min = read_f16(&b[2..]);
        let sc = &b[4..16];
        let qh = &b[16..48];
        let (mut u1, mut u2) = (1u8, 2u8);
        for c in 0..4 {
            let ql = &b[48 + 32 * c..80 + 32 * c];
            let (s1, m1) = get_scale_min_k4(2 * c, sc);
            let (s2, m2) = get_scale_min_k4(2 * c + 1, sc);
            let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
            for i in 0..32 {
                let h1 = if qh[i] & u1 != 0 { 16 } else { 0 };
                let h2 = if qh[i] & u2 != 0 { 16 } else { 0 };
                y[64 * c + i] = d1 * f32::from((ql[i] & 0xf) + h1) - m1;
                y[64 * c + 32 + i] = d2 * f32::from((ql[i] >> 4) + h2) - m2;
            }
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

/// Dequantizes a Q6_K row.
pub fn dequantize_row_q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(210).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(&b[208..]);
        for h in 0..2 {
            let ql = &b[64 * h..64 * h + 64];
            let qh = &b[128 + 32 * h..160 + 32 * h];
            let sc = &b[192 + 8 * h..200 + 8 * h];
            let y = &mut y[128 * h..128 * h + 128];
            for i in 0..32 {
                let is = i / 16;
                let q1 = ((ql[i] & 0xf) | ((qh[i] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[i + 32] & 0xf) | (((qh[i] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4)) as i8 - 32;
                let s = |k: usize| f32::from(sc[k] as i8);
                y[i] = d * s(is) * f32::from(q1);
                y[i + 32] = d * s(is + 2) * f32::from(q2);
                y[i + 64] = d * s(is + 4) * f32::from(q3);
                y[i + 96] = d * s(is + 6) * f32::from(q4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-3.7), -4);
    }
}
