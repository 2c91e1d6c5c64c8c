//! Q8_0: 32 elements per block, `d: f16` then 32 signed bytes, `y = d·q`.
//! Reproduces ggml's `quantize_row_q8_0_ref` (`roundf`: ties away from zero).

use super::{f16_bits, read_f16};

const QK: usize = 32;
const BLOCK: usize = 34;

/// Quantizes one row (`src.len()` a multiple of 32) into `src.len()/32·34` bytes.
pub fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU has AVX2 and F16C, checked just above.
        unsafe { avx2::quantize_row(src, dst) };
        return;
    }
    quantize_blocks(src, dst);
}

/// Q8_0 straight from little-endian F16 source bytes (`src.len()` = 2 × a multiple of 32), the
/// conversion to f32 done in registers. Returns `false`, having written nothing that matters,
/// when the CPU lacks AVX2/F16C or a value is not finite: the caller then takes the general path
/// (convert, check, [`quantize_row_q8_0`]), which also names the bad value.
pub fn quantize_row_q8_0_from_f16(src: &[u8], dst: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU has AVX2 and F16C, checked just above.
        return unsafe { avx2::quantize_row_from_halves::<false>(src, dst) };
    }
    let _ = (src, dst);
    false
}

/// [`quantize_row_q8_0_from_f16`] for BF16 source bytes (a bf16 is the top half of an f32, so
/// the conversion is a shift).
pub fn quantize_row_q8_0_from_bf16(src: &[u8], dst: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU has AVX2 and F16C, checked just above.
        return unsafe { avx2::quantize_row_from_halves::<true>(src, dst) };
    }
    let _ = (src, dst);
    false
}

/// Q8_0 with AVX2 intrinsics, four vectors of eight per block. Every step is the scalar one in
/// vector form (IEEE max, divide, multiply, truncation and the same tie rule), so the bytes are
/// identical to [`quantize_blocks`]; tests compare the two.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK, QK};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn quantize_row(src: &[f32], dst: &mut [u8]) {
        for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
            let p = x.as_ptr();
            // SAFETY: each load reads 8 floats inside the 32 of `x`.
            let v = unsafe {
                [
                    _mm256_loadu_ps(p),
                    _mm256_loadu_ps(p.add(8)),
                    _mm256_loadu_ps(p.add(16)),
                    _mm256_loadu_ps(p.add(24)),
                ]
            };
            // SAFETY: this function enables AVX2 and F16C.
            unsafe { quantize_block(v, y) };
        }
    }

    /// From 16-bit floats, F16 or (`BF16`) bfloat16. Returns whether every value was finite
    /// (if not, `dst` holds garbage).
    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn quantize_row_from_halves<const BF16: bool>(src: &[u8], dst: &mut [u8]) -> bool {
        let inf = _mm256_set1_ps(f32::INFINITY);
        let sign = _mm256_set1_ps(-0.0);
        let mut finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        for (x, y) in src.chunks_exact(2 * QK).zip(dst.chunks_exact_mut(BLOCK)) {
            let p: *const __m128i = x.as_ptr().cast();
            // SAFETY: each load reads 16 bytes (8 halves) inside the 64 of `x`; the CPU has
            // AVX2 and F16C (this function's features).
            let v = unsafe {
                [
                    widen::<BF16>(p),
                    widen::<BF16>(p.add(1)),
                    widen::<BF16>(p.add(2)),
                    widen::<BF16>(p.add(3)),
                ]
            };
            for v in v {
                let ok = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(sign, v), inf);
                finite = _mm256_and_ps(finite, ok);
            }
            // SAFETY: this function enables AVX2 and F16C.
            unsafe { quantize_block(v, y) };
        }
        _mm256_movemask_ps(finite) == 0xff
    }

    /// Eight 16-bit floats at `p` (unaligned) as f32.
    ///
    /// # Safety
    /// 16 bytes must be readable at `p`; the CPU must have AVX2 and F16C.
    #[inline(always)]
    unsafe fn widen<const BF16: bool>(p: *const __m128i) -> __m256 {
        // SAFETY: the caller guarantees the bytes and the CPU features.
        unsafe {
            let halves = _mm_loadu_si128(p);
            if BF16 {
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(halves)))
            } else {
                _mm256_cvtph_ps(halves)
            }
        }
    }

    /// One block. `inline(always)` (so not itself a `target_feature` function): it is only ever
    /// inlined into the two functions above, which enable AVX2 and F16C.
    ///
    /// # Safety
    /// The CPU must have AVX2 and F16C.
    #[inline(always)]
    unsafe fn quantize_block(v: [__m256; 4], y: &mut [u8]) {
        // SAFETY (whole body): the caller guarantees AVX2 and F16C.
        unsafe {
            let sign = _mm256_set1_ps(-0.0);
            let [v0, v1, v2, v3] = v;
            let m = _mm256_max_ps(
                _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)),
            );
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            // F16C's conversion rounds to nearest even, as `f16_bits` does.
            let d16 = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(d));
            y[..2].copy_from_slice(&(_mm_cvtsi128_si32(d16) as u16).to_le_bytes());
            let id = _mm256_set1_ps(id);
            // No closures here: a closure would not inherit the caller's target features, and
            // every intrinsic in it would become a call.
            let q = [
                scale_round(v0, id),
                scale_round(v1, id),
                scale_round(v2, id),
                scale_round(v3, id),
            ];
            let packed = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            // The packs interleave the two 128-bit lanes; put the 32 bytes back in order.
            let bytes =
                _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            let y: &mut [u8; BLOCK] = y.try_into().expect("chunks_exact_mut(BLOCK)");
            // `y[2..]` is exactly 32 bytes; the store is unaligned.
            _mm256_storeu_si256(y[2..].as_mut_ptr().cast(), bytes);
        }
    }

    /// `round_half_away(v · id)` in eight lanes: truncate, then step away from zero when the
    /// remainder is at least one half.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline(always)]
    unsafe fn scale_round(v: __m256, id: __m256) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe {
            let x = _mm256_mul_ps(v, id);
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
            let frac = _mm256_sub_ps(x, t);
            let one = _mm256_set1_ps(1.0);
            let up = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5)), one);
            let down = _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(frac, _mm256_set1_ps(-0.5)), one);
            _mm256_cvttps_epi32(_mm256_sub_ps(_mm256_add_ps(t, up), down))
        }
    }
}

/// The portable path, and the reference the vector path is tested against.
fn quantize_blocks(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
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
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
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
    use super::super::TestRng;
    use super::{
        quantize_blocks, quantize_row_q8_0, quantize_row_q8_0_from_bf16,
        quantize_row_q8_0_from_f16, round_half_away,
    };

    /// The vector path (taken on CPUs with AVX2) gives the scalar path's bytes: random rows at
    /// many scales, exact ties, zeros, subnormals and single outliers.
    #[test]
    fn vector_path_equals_scalar_path() {
        let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
        let mut rows: Vec<Vec<f32>> = Vec::new();
        for scale in [1e-30f32, 1e-6, 0.02, 1.0, 127.0, 3e4, 1e30] {
            rows.push((0..4096).map(|_| rng.centred() * scale).collect());
        }
        rows.push(vec![0.0; 64]);
        rows.push(vec![-0.0; 64]);
        rows.push(vec![f32::from_bits(1); 32]);
        // Ties: with amax = 127, x·id lands exactly on k + 0.5.
        rows.push(
            (0..32)
                .map(|i| if i == 0 { 127.0 } else { i as f32 - 16.5 })
                .collect(),
        );
        rows.push(
            (0..32)
                .map(|i| {
                    if i == 31 {
                        -254.0
                    } else {
                        (i as f32 - 15.0) * 2.0 + 1.0
                    }
                })
                .collect(),
        );
        for row in &rows {
            let mut fast = vec![0u8; row.len() / 32 * 34];
            let mut slow = fast.clone();
            quantize_row_q8_0(row, &mut fast);
            quantize_blocks(row, &mut slow);
            assert_eq!(fast, slow, "row starting {:?}", &row[..4]);
        }
    }

    /// From F16 or BF16 bytes: the same blocks as converting to f32 first (random finite bit
    /// patterns, zeros, exact ties); `false` on a non-finite value.
    #[test]
    fn from_halves_equals_convert_then_quantize() {
        type Kernel = fn(&[u8], &mut [u8]) -> bool;
        type Widen = fn(u16) -> f32;
        // (kernel, exponent mask of the format, bits -> f32)
        let formats: [(Kernel, u16, Widen); 2] = [
            (quantize_row_q8_0_from_f16, 0x7c00, |b| {
                half::f16::from_bits(b).to_f32()
            }),
            (quantize_row_q8_0_from_bf16, 0x7f80, |b| {
                half::bf16::from_bits(b).to_f32()
            }),
        ];
        for (kernel, exponent, to_f32) in formats {
            let mut rng = TestRng(0x2545_f491_4f6c_dd1d);
            let finite = |bits: u16| {
                if bits & exponent == exponent {
                    bits & !exponent
                } else {
                    bits
                }
            };
            let mut halves: Vec<u16> = (0..8192)
                .map(|_| finite((rng.bits() >> 48) as u16))
                .collect();
            halves.extend([0u16; 32]);
            // 127 then k + 0.5 for k in -16..15: exact ties once scaled by 1.
            let ties = (0..32).map(|i| if i == 0 { 127.0 } else { i as f32 - 16.5 });
            halves.extend(ties.map(|x: f32| {
                let f16 = half::f16::from_f32(x);
                if exponent == 0x7c00 {
                    f16.to_bits()
                } else {
                    half::bf16::from_f32(x).to_bits()
                }
            }));
            let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
            let floats: Vec<f32> = halves.iter().map(|&h| to_f32(h)).collect();
            let mut fused = vec![0u8; halves.len() / 32 * 34];
            let mut reference = fused.clone();
            quantize_blocks(&floats, &mut reference);
            if kernel(&bytes, &mut fused) {
                assert_eq!(fused, reference);
            } else {
                #[cfg(target_arch = "x86_64")]
                assert!(
                    !std::arch::is_x86_feature_detected!("avx2"),
                    "finite input refused"
                );
            }
            for bad in [exponent, exponent | 0x8000, exponent | 1] {
                let mut row = bytes[..64 * 2].to_vec();
                row[37 * 2..37 * 2 + 2].copy_from_slice(&bad.to_le_bytes());
                assert!(!kernel(&row, &mut fused[..68]), "{bad:#x}");
            }
        }
    }

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
