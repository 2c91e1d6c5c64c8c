//! Quantizers against the `gguf` Python package: byte-identical for the
//! types it can quantize, dequantization-checked for the K-quants.

use larder_convert::GgmlType;

use crate::common::{Rng, bytes_f32, f32_bytes, ggml_quants_lib, run_py};

const COLS: usize = 256;

/// Rows chosen to hit the corner cases of the reference quantizers.
fn awkward_rows(include_extreme: bool) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(7);
    let mut rows: Vec<Vec<f32>> = Vec::new();
    for scale in [0.02f32, 1.0, 0.001] {
        rows.push((0..COLS).map(|_| rng.normal() * scale).collect());
    }
    rows.push(vec![0.0; COLS]);
    rows.push(vec![0.37; COLS]); // constant blocks: Q4_1/Q5_1 d = 0
    rows.push((0..COLS).map(|_| rng.normal() * 1e-8).collect()); // f16 scale underflow
    rows.push((0..COLS).map(|_| rng.normal() * 3e5).collect()); // f16 scale/min overflow
    // Negative maxima: each 32-block's largest magnitude is negative.
    rows.push(
        (0..COLS)
            .map(|i| if i % 32 == 5 { -3.0 } else { rng.normal() })
            .collect(),
    );
    // Equal magnitude, opposite signs: the first one must win.
    rows.push(
        (0..COLS)
            .map(|i| match i % 32 {
                3 => 2.0,
                9 => -2.0,
                _ => rng.normal() * 0.5,
            })
            .collect(),
    );
    // Ties at .5 for Q8_0 (d = 1 when amax = 127) and for the K-quant grids.
    rows.push(
        (0..COLS)
            .map(|i| {
                if i % 32 == 0 {
                    127.0
                } else {
                    (i % 32) as f32 - 16.5
                }
            })
            .collect(),
    );
    rows.push(
        (0..COLS)
            .map(|i| {
                if i % 32 == 0 {
                    -8.0
                } else {
                    ((i % 32) as f32 - 16.0) * 0.5
                }
            })
            .collect(),
    );
    rows.push(
        (0..COLS)
            .map(|i| {
                if i % 32 == 0 {
                    -16.0
                } else {
                    (i % 17) as f32 - 8.5
                }
            })
            .collect(),
    );
    // All non-negative and all non-positive rows.
    rows.push((0..COLS).map(|_| rng.normal().abs()).collect());
    rows.push((0..COLS).map(|_| -rng.normal().abs()).collect());
    // Sparse row: mostly zeros.
    rows.push(
        (0..COLS)
            .map(|i| if i % 37 == 0 { rng.normal() } else { 0.0 })
            .collect(),
    );
    if include_extreme {
        rows.push((0..COLS).map(|_| rng.normal() * 1e30).collect());
        rows.push((0..COLS).map(|_| rng.normal() * 1e-30).collect());
    }
    for _ in 0..16 {
        rows.push((0..COLS).map(|_| rng.normal() * 0.05).collect());
    }
    rows
}

fn ours(ty: GgmlType, rows: &[Vec<f32>]) -> Vec<u8> {
    let rs = ty.row_size(COLS).unwrap();
    let mut out = vec![0u8; rs * rows.len()];
    for (r, d) in rows.iter().zip(out.chunks_exact_mut(rs)) {
        ty.quantize_row(r, d);
    }
    out
}

#[test]
fn float_and_legacy_types_are_byte_identical_to_gguf_py() {
    let rows = awkward_rows(true);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.f32");
    std::fs::write(&input, f32_bytes(&rows.concat())).unwrap();
    let n = rows.len().to_string();
    for ty in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Bf16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
    ] {
        let out = dir.path().join(format!("{ty}.bin"));
        run_py(
            "quant_ref.py",
            &[
                "quantize",
                ty.name(),
                &n,
                "256",
                input.to_str().unwrap(),
                out.to_str().unwrap(),
            ],
        );
        let reference = std::fs::read(&out).unwrap();
        let mine = ours(ty, &rows);
        assert_eq!(reference.len(), mine.len(), "{ty}: size");
        let rs = ty.row_size(COLS).unwrap();
        for (r, (a, b)) in mine.chunks(rs).zip(reference.chunks(rs)).enumerate() {
            assert!(
                a == b,
                "{ty}: row {r} differs from gguf-py\nours: {a:?}\nref:  {b:?}"
            );
        }
        // Our dequantizer must agree with gguf-py's on the same bytes too.
        let deq = dir.path().join(format!("{ty}.deq"));
        run_py(
            "quant_ref.py",
            &[
                "dequantize",
                ty.name(),
                &n,
                "256",
                out.to_str().unwrap(),
                deq.to_str().unwrap(),
            ],
        );
        let theirs = bytes_f32(&std::fs::read(&deq).unwrap());
        let mut mine_deq = vec![0.0f32; theirs.len()];
        for (b, y) in reference.chunks(rs).zip(mine_deq.chunks_mut(COLS)) {
            ty.dequantize_row(b, y);
        }
        for (i, (a, b)) in mine_deq.iter().zip(&theirs).enumerate() {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{ty}: dequant element {i}: {a} vs {b}"
            );
        }
    }
}

fn rel_rmse(x: &[f32], y: &[f32]) -> f64 {
    let num: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let den: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
    (num / den).sqrt()
}

/// Relative RMSE bounds for N(0, σ²) rows, with justification.
///
/// A b-bit asymmetric grid over a sub-block of 16/32 Gaussian samples spans
/// about ±2σ (expected range of 32 normals ≈ 4.1σ), so the step is
/// Δ ≈ 4.1σ/(2^b − 1) and uniform rounding error is Δ/√12: Q2_K 0.39σ
/// (but Q2_K's weighted fit clips outliers: llama.cpp reports ~0.3),
/// Q3_K (symmetric, 8 levels over ±|max|) ≈ 0.17σ, Q4_K 0.079σ, Q5_K
/// 0.038σ, Q6_K (symmetric 64 levels, 16-element sub-blocks) ≈ 0.018σ. The
/// optimizing searches only lower these; the 6-bit sub-block scale and f16
/// super-block scale add ~1%. Bounds are ≈1.25× those estimates.
fn bound(ty: GgmlType) -> f64 {
    match ty {
        GgmlType::Q2K => 0.40,
        GgmlType::Q3K => 0.21,
        GgmlType::Q4K => 0.10,
        GgmlType::Q5K => 0.048,
        GgmlType::Q6K => 0.023,
        _ => unreachable!(),
    }
}

#[test]
fn k_quants_dequantize_with_gguf_py_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(11);
    let gaussian: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..COLS).map(|_| rng.normal() * 0.02).collect())
        .collect();
    let awkward = awkward_rows(false);
    for ty in [
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        for (label, rows) in [("gaussian", &gaussian), ("awkward", &awkward)] {
            let bytes = ours(ty, rows);
            let qpath = dir.path().join(format!("{ty}-{label}.bin"));
            let dpath = dir.path().join(format!("{ty}-{label}.f32"));
            std::fs::write(&qpath, &bytes).unwrap();
            let n = rows.len().to_string();
            run_py(
                "quant_ref.py",
                &[
                    "dequantize",
                    ty.name(),
                    &n,
                    "256",
                    qpath.to_str().unwrap(),
                    dpath.to_str().unwrap(),
                ],
            );
            let theirs = bytes_f32(&std::fs::read(&dpath).unwrap());
            let rs = ty.row_size(COLS).unwrap();
            let mut mine = vec![0.0f32; theirs.len()];
            for (b, y) in bytes.chunks(rs).zip(mine.chunks_mut(COLS)) {
                ty.dequantize_row(b, y);
            }
            for (i, (a, b)) in mine.iter().zip(&theirs).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{ty} {label}: dequant element {i}: {a} vs {b}"
                );
            }
            let x = rows.concat();
            if label == "gaussian" {
                let e = rel_rmse(&x, &theirs);
                eprintln!("{ty}: relative RMSE {e:.4} (bound {})", bound(ty));
                assert!(
                    e < bound(ty),
                    "{ty}: relative RMSE {e} exceeds {}",
                    bound(ty)
                );
            } else {
                for (r, row) in rows.iter().enumerate() {
                    let y = &theirs[r * COLS..(r + 1) * COLS];
                    assert!(y.iter().all(|v| v.is_finite()), "{ty}: row {r} not finite");
                    if row.iter().all(|v| *v == 0.0) {
                        assert!(y.iter().all(|v| *v == 0.0), "{ty}: zero row {r} not zero");
                    } else if row.iter().map(|v| v.abs()).fold(0.0f32, f32::max) > 1e-3 {
                        // Generous: awkward rows are not Gaussian.
                        let e = rel_rmse(row, y);
                        assert!(
                            e < 4.0 * bound(ty).max(0.1),
                            "{ty}: awkward row {r} error {e}"
                        );
                    }
                }
            }
        }
    }
}

/// Blocks worked out by hand from the algorithm (see gguf.md §2.4).
#[test]
fn k_quant_fixed_vectors() {
    let zeros = vec![0.0f32; 256];
    for ty in [
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        let mut out = vec![0xaau8; ty.type_size()];
        ty.quantize_row(&zeros, &mut out);
        assert!(
            out.iter().all(|b| *b == 0),
            "{ty}: zero block must be all-zero bytes, got {out:?}"
        );
    }

    let mut one = vec![0.0f32; 256];
    one[0] = 1.0;

    // Q6_K: sub-block 0 = {1, 0 × 15}. make_qx_quants(nmax 32) gives
    // l(1) = −32, l(0) = 0, scale −1/32 (the ±0.1·is retries never beat it).
    // iscale = −128/(−1/32) = 4096, d = f16(2^−12) = 0x0C00, scales[0] =
    // nearest(4096·−1/32) = −128 (0x80). Requantized: L = 0 for the 1 and
    // 32 for its zeros; the other all-zero sub-blocks keep L = 0 (d_j = 0).
    // So ql is all zero, qh[1..16] = 32>>4 = 2, the rest 0.
    let mut q6 = vec![0u8; 210];
    GgmlType::Q6K.quantize_row(&one, &mut q6);
    let mut expect = vec![0u8; 210];
    for b in &mut expect[129..144] {
        *b = 2;
    }
    expect[192] = 0x80;
    expect[208..210].copy_from_slice(&0x0c00u16.to_le_bytes());
    assert_eq!(q6, expect);

    // Q4_K: sub-block 0 = {1, 0 × 31}: min 0, max 1, scale 1/15 (exact fit,
    // so no search step improves it); others zero. max_scale = 1/15,
    // ls[0] = nearest(63/(1/15)·(1/15)) = 63, all mins 0, d = f16(1/945) =
    // 0x1456, dmin = 0. Requantized L(1) = nearest(1/(d·63)) = 15.
    let mut q4 = vec![0u8; 144];
    GgmlType::Q4K.quantize_row(&one, &mut q4);
    let mut expect = vec![0u8; 144];
    expect[0..2].copy_from_slice(&0x1456u16.to_le_bytes());
    expect[4] = 63;
    expect[16] = 15;
    assert_eq!(q4, expect);
}

/// Byte-for-byte against ggml's own C code, from the library
/// [`ggml_quants_lib`] finds: the `libggml-base.so` that `.ci/setup` builds
/// from the llama-cpp-python sdist (`convert/tests/build_ggml.sh`), or
/// `$LARDER_GGML_QUANTS_LIB` (e.g. `.llama-cpp/lib/libggml-base.so`, of
/// `tests/build_llama_cpp.sh`). Every block type against
/// `quantize_row_*_ref`; IQ4_NL/IQ4_XS against `ggml_quantize_chunk` (what
/// llama-quantize calls; not their `_ref`); and every type given importance
/// weights against `ggml_quantize_chunk` with them as its imatrix. gguf-py
/// cannot quantize K-quants, IQ4 or with weights, so this is their only
/// byte-level oracle; without the library the test fails.
#[test]
fn k_quants_match_ggml_c_reference() {
    let lib = ggml_quants_lib();
    let lib = lib.to_str().unwrap().to_owned();
    let mut rows = awkward_rows(false);
    let mut rng = Rng::new(99);
    rows.extend((0..256).map(|_| (0..COLS).map(|_| rng.normal() * 0.02).collect::<Vec<_>>()));
    // Importance weights as an imatrix gives them (mean squared activations):
    // positive, spread over orders of magnitude, a few columns dominant.
    let qw: Vec<f32> = (0..COLS)
        .map(|i| {
            let a = rng.normal();
            a * a * if i % 41 == 3 { 100.0 } else { 1.0 } + 1e-6
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.f32");
    std::fs::write(&input, f32_bytes(&rows.concat())).unwrap();
    let qw_path = dir.path().join("qw.f32");
    std::fs::write(&qw_path, f32_bytes(&qw)).unwrap();
    let n = rows.len().to_string();
    let block_types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::Iq4Nl,
        GgmlType::Iq4Xs,
        GgmlType::Mxfp4,
    ];
    let mut cases: Vec<(GgmlType, &str, bool)> = Vec::new();
    for ty in block_types {
        let iq4 = matches!(ty, GgmlType::Iq4Nl | GgmlType::Iq4Xs);
        cases.push((ty, if iq4 { "chunk" } else { "ref" }, false));
        cases.push((ty, "chunk", true));
    }
    for (ty, mode, weighted) in cases {
        let label = format!("{ty} ({mode}{})", if weighted { ", weighted" } else { "" });
        let out = dir.path().join(format!("{ty}-{mode}-{weighted}.ggml"));
        let mut args = vec![
            lib.as_str(),
            mode,
            ty.name(),
            &n,
            "256",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ];
        if weighted {
            args.push(qw_path.to_str().unwrap());
        }
        run_py("ggml_ref.py", &args);
        let reference = std::fs::read(&out).unwrap();
        let rs = ty.row_size(COLS).unwrap();
        let mut mine = vec![0u8; rs * rows.len()];
        for (r, d) in rows.iter().zip(mine.chunks_exact_mut(rs)) {
            ty.quantize_row_weighted(r, d, weighted.then_some(&qw[..]));
        }
        assert_eq!(reference.len(), mine.len(), "{label}: size");
        let bad: Vec<usize> = (0..rows.len())
            .filter(|&r| mine[r * rs..(r + 1) * rs] != reference[r * rs..(r + 1) * rs])
            .collect();
        assert!(
            bad.is_empty(),
            "{label}: rows {bad:?} differ from ggml's C code"
        );
    }
}
