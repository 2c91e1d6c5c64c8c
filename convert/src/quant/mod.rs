//! ggml tensor types and their reference quantizers.
//!
//! Every quantizer here is a pure function from one row of `f32` values to the
//! packed bytes of that row, reproducing ggml's `quantize_row_*_ref` (the path
//! `llama-quantize` takes without an importance matrix) operation for
//! operation: same f32 expression order, no fused multiply-add, the same
//! rounding (`roundf` = ties away for Q8_0, truncating casts for the legacy
//! 4/5-bit types, ties-to-even `nearest_int` for the K-quants). That is what
//! makes the output byte-identical to the `gguf` Python package and ggml.
//!
//! One module per block family: [`float`] (F32/F16/BF16), [`q8_0`],
//! [`legacy`] (Q4_0/Q4_1/Q5_0/Q5_1), [`kquants`] (Q2_K…Q6_K) and [`mxfp4`] (which GPT-OSS
//! checkpoints store and the converter repacks without requantizing).

pub mod float;
pub mod iq4;
pub mod kquants;
pub mod legacy;
pub mod mxfp4;
pub mod q8_0;
pub mod weighted;

pub use kquants::{
    dequantize_row_q2_k, dequantize_row_q3_k, dequantize_row_q4_k, dequantize_row_q5_k,
    dequantize_row_q6_k, quantize_row_q2_k, quantize_row_q3_k, quantize_row_q4_k,
    quantize_row_q5_k, quantize_row_q6_k,
};
pub use legacy::{
    dequantize_row_q4_0, dequantize_row_q4_1, dequantize_row_q5_0, dequantize_row_q5_1,
    quantize_row_q4_0, quantize_row_q4_1, quantize_row_q5_0, quantize_row_q5_1,
};
pub use q8_0::{
    dequantize_row_q8_0, quantize_row_q8_0, quantize_row_q8_0_from_bf16, quantize_row_q8_0_from_f16,
};

/// A ggml tensor type that this crate can write.
///
/// The discriminants are the on-disk `ggml_type` ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum GgmlType {
    /// IEEE binary32.
    F32 = 0,
    /// IEEE binary16.
    F16 = 1,
    /// 4-bit, 32-element blocks, scale only.
    Q4_0 = 2,
    /// 4-bit, 32-element blocks, scale and minimum.
    Q4_1 = 3,
    /// 5-bit, 32-element blocks, scale only.
    Q5_0 = 6,
    /// 5-bit, 32-element blocks, scale and minimum.
    Q5_1 = 7,
    /// 8-bit, 32-element blocks.
    Q8_0 = 8,
    /// 2-bit K-quant (256-element super-blocks).
    Q2K = 10,
    /// 3-bit K-quant.
    Q3K = 11,
    /// 4-bit K-quant.
    Q4K = 12,
    /// 5-bit K-quant.
    Q5K = 13,
    /// 6-bit K-quant.
    Q6K = 14,
    /// 4-bit non-linear levels, 32-element blocks.
    Iq4Nl = 20,
    /// 4-bit non-linear levels, 256-element super-blocks with 6-bit scales.
    Iq4Xs = 23,
    /// bfloat16.
    Bf16 = 30,
    /// OCP MXFP4: 32-element blocks of E2M1 codes with an E8M0 exponent.
    Mxfp4 = 39,
}

/// Every type, in id order.
pub const ALL_TYPES: [GgmlType; 16] = [
    GgmlType::F32,
    GgmlType::F16,
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
    GgmlType::Bf16,
    GgmlType::Mxfp4,
];

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

impl GgmlType {
    /// The on-disk `ggml_type` id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The name ggml and gguf-py use (`Q4_K`, `BF16`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q2K => "Q2_K",
            Self::Q3K => "Q3_K",
            Self::Q4K => "Q4_K",
            Self::Q5K => "Q5_K",
            Self::Q6K => "Q6_K",
            Self::Iq4Nl => "IQ4_NL",
            Self::Iq4Xs => "IQ4_XS",
            Self::Bf16 => "BF16",
            Self::Mxfp4 => "MXFP4",
        }
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::Bf16 => 1,
            Self::Q4_0
            | Self::Q4_1
            | Self::Q5_0
            | Self::Q5_1
            | Self::Q8_0
            | Self::Iq4Nl
            | Self::Mxfp4 => 32,
            Self::Q2K | Self::Q3K | Self::Q4K | Self::Q5K | Self::Q6K | Self::Iq4Xs => QK_K,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q2K => 84,
            Self::Q3K => 110,
            Self::Q4K => 144,
            Self::Q5K => 176,
            Self::Q6K => 210,
            Self::Iq4Nl => 18,
            Self::Iq4Xs => 136,
            Self::Mxfp4 => mxfp4::BLOCK,
        }
    }

    /// Whether the type is block-quantized (anything but F32/F16/BF16).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes of one row of `n` elements, or `None` if `n` is not a whole
    /// number of blocks.
    pub fn row_size(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.type_size())
    }

    /// Quantizes one row. `dst.len()` must be `row_size(src.len())`.
    ///
    /// # Panics
    /// If the lengths do not match (a programming error, never input data).
    pub fn quantize_row(self, src: &[f32], dst: &mut [u8]) {
        assert_eq!(
            Some(dst.len()),
            self.row_size(src.len()),
            "row size mismatch"
        );
        #[cfg(target_arch = "x86_64")]
        if self.is_k_quant()
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            unsafe { quantize_k_row_avx2(self, src, dst) };
            return;
        }
        match self {
            Self::F32 => float::quantize_row_f32(src, dst),
            Self::F16 => float::quantize_row_f16(src, dst),
            Self::Bf16 => float::quantize_row_bf16(src, dst),
            Self::Q4_0 => quantize_row_q4_0(src, dst),
            Self::Q4_1 => quantize_row_q4_1(src, dst),
            Self::Q5_0 => quantize_row_q5_0(src, dst),
            Self::Q5_1 => quantize_row_q5_1(src, dst),
            Self::Q8_0 => quantize_row_q8_0(src, dst),
            Self::Q2K => quantize_row_q2_k(src, dst),
            Self::Q3K => quantize_row_q3_k(src, dst),
            Self::Q4K => quantize_row_q4_k(src, dst),
            Self::Q5K => quantize_row_q5_k(src, dst),
            Self::Q6K => quantize_row_q6_k(src, dst),
            Self::Iq4Nl => iq4::quantize_row_iq4_nl(src, dst, None),
            Self::Iq4Xs => iq4::quantize_row_iq4_xs(src, dst, None),
            Self::Mxfp4 => mxfp4::quantize_row_mxfp4(src, dst),
        }
    }

    /// Quantizes one row as `llama-quantize` does with importance weights
    /// `qw` (one per column, from an imatrix): ggml's `quantize_row_*_impl`.
    /// Without weights, or for types that ignore them (F32/F16/BF16/Q8_0),
    /// this is [`GgmlType::quantize_row`].
    ///
    /// # Panics
    /// If the lengths do not match.
    pub fn quantize_row_weighted(self, src: &[f32], dst: &mut [u8], qw: Option<&[f32]>) {
        let Some(qw) = qw else {
            return self.quantize_row(src, dst);
        };
        assert_eq!(qw.len(), src.len(), "one importance weight per column");
        assert_eq!(
            Some(dst.len()),
            self.row_size(src.len()),
            "row size mismatch"
        );
        match self {
            Self::Q4_0 => weighted::quantize_row_q4_0(src, dst, qw),
            Self::Q4_1 => weighted::quantize_row_q4_1(src, dst, qw),
            Self::Q5_0 => weighted::quantize_row_q5_0(src, dst, qw),
            Self::Q5_1 => weighted::quantize_row_q5_1(src, dst, qw),
            Self::Q2K => weighted::quantize_row_q2_k(src, dst, qw),
            Self::Q3K => weighted::quantize_row_q3_k(src, dst, qw),
            Self::Q4K => weighted::quantize_row_q4_k(src, dst, qw),
            Self::Q5K => weighted::quantize_row_q5_k(src, dst, qw),
            Self::Q6K => weighted::quantize_row_q6_k(src, dst, qw),
            Self::Iq4Nl => iq4::quantize_row_iq4_nl(src, dst, Some(qw)),
            Self::Iq4Xs => iq4::quantize_row_iq4_xs(src, dst, Some(qw)),
            // ggml's MXFP4 quantizer takes no importance weights either.
            Self::F32 | Self::F16 | Self::Bf16 | Self::Q8_0 | Self::Mxfp4 => {
                self.quantize_row(src, dst)
            }
        }
    }

    /// Whether the type is one of Q2_K…Q6_K.
    pub fn is_k_quant(self) -> bool {
        matches!(
            self,
            Self::Q2K | Self::Q3K | Self::Q4K | Self::Q5K | Self::Q6K
        )
    }

    /// Dequantizes one row (the inverse used by ggml's `dequantize_row_*`).
    ///
    /// # Panics
    /// If the lengths do not match.
    pub fn dequantize_row(self, src: &[u8], dst: &mut [f32]) {
        assert_eq!(
            Some(src.len()),
            self.row_size(dst.len()),
            "row size mismatch"
        );
        match self {
            Self::F32 => float::dequantize_row_f32(src, dst),
            Self::F16 => float::dequantize_row_f16(src, dst),
            Self::Bf16 => float::dequantize_row_bf16(src, dst),
            Self::Q4_0 => dequantize_row_q4_0(src, dst),
            Self::Q4_1 => dequantize_row_q4_1(src, dst),
            Self::Q5_0 => dequantize_row_q5_0(src, dst),
            Self::Q5_1 => dequantize_row_q5_1(src, dst),
            Self::Q8_0 => dequantize_row_q8_0(src, dst),
            Self::Q2K => dequantize_row_q2_k(src, dst),
            Self::Q3K => dequantize_row_q3_k(src, dst),
            Self::Q4K => dequantize_row_q4_k(src, dst),
            Self::Q5K => dequantize_row_q5_k(src, dst),
            Self::Q6K => dequantize_row_q6_k(src, dst),
            Self::Iq4Nl => iq4::dequantize_row_iq4_nl(src, dst),
            Self::Iq4Xs => iq4::dequantize_row_iq4_xs(src, dst),
            Self::Mxfp4 => mxfp4::dequantize_row_mxfp4(src, dst),
        }
    }
}

/// The K-quant kernels compiled for AVX2 (they are `inline(always)`, so this copy of them is
/// vectorised for it). Rust never fuses a multiply and an add on its own, so the results are
/// the portable ones bit for bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn quantize_k_row_avx2(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    match ty {
        GgmlType::Q2K => quantize_row_q2_k(src, dst),
        GgmlType::Q3K => quantize_row_q3_k(src, dst),
        GgmlType::Q4K => quantize_row_q4_k(src, dst),
        GgmlType::Q5K => quantize_row_q5_k(src, dst),
        GgmlType::Q6K => quantize_row_q6_k(src, dst),
        _ => unreachable!("only K-quants come here"),
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `GGML_FP32_TO_FP16`: round to nearest even.
#[inline]
pub(crate) fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// `GGML_FP16_TO_FP32`.
#[inline]
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Reads the little-endian f16 at `b[0..2]` as f32.
#[inline]
pub(crate) fn read_f16(b: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// A xorshift64 stream for the kernels' tests: reproducible, no dependency.
#[cfg(test)]
pub(crate) struct TestRng(pub u64);

#[cfg(test)]
impl TestRng {
    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-0.5, 0.5).
    pub fn centred(&mut self) -> f32 {
        (self.bits() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The K-quant rows `quantize_row` produces (the AVX2 copy, on CPUs that have it) equal the
    /// portable kernels' bytes, on rows at several scales and with outliers.
    #[test]
    fn k_quants_dispatch_equals_portable() {
        let mut rng = TestRng(0x853c_49e6_748f_ea9b);
        let mut row: Vec<f32> = Vec::new();
        for scale in [1e-4f32, 0.02, 1.0, 300.0] {
            row.extend((0..4 * QK_K).map(|_| rng.centred() * scale));
        }
        row[100] = 40.0;
        row[3 * QK_K + 7] = -90.0;
        type Kernel = fn(&[f32], &mut [u8]);
        let portable: [(GgmlType, Kernel); 5] = [
            (GgmlType::Q2K, quantize_row_q2_k),
            (GgmlType::Q3K, quantize_row_q3_k),
            (GgmlType::Q4K, quantize_row_q4_k),
            (GgmlType::Q5K, quantize_row_q5_k),
            (GgmlType::Q6K, quantize_row_q6_k),
        ];
        for (ty, kernel) in portable {
            let mut dispatched = vec![0u8; ty.row_size(row.len()).unwrap()];
            let mut reference = dispatched.clone();
            ty.quantize_row(&row, &mut dispatched);
            kernel(&row, &mut reference);
            assert_eq!(dispatched, reference, "{ty}");
        }
    }
}
