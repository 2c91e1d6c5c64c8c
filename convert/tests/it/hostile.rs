//! Hostile safetensors files, and GPT-OSS checkpoints with malformed MXFP4 experts, must
//! produce errors that name the file or tensor, never panics.

use larder_convert::ConvertError;
use larder_convert::safetensors::{Checkpoint, parse_header};

fn file(header: &[u8], data_len: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.resize(v.len() + data_len, 0);
    v
}

fn open(bytes: &[u8]) -> Result<Checkpoint, ConvertError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("blob");
    std::fs::write(&p, bytes).unwrap();
    Checkpoint::open_file("model.safetensors", &p)
}

#[test]
fn hostile_headers_are_errors_naming_the_file() {
    let valid = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut huge = (u64::MAX - 3).to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated length", vec![8, 0, 0]),
        ("truncated header", file(valid, 8)[..20].to_vec()),
        ("length beyond file", {
            let mut f = file(valid, 8);
            f[..8].copy_from_slice(&10_000u64.to_le_bytes());
            f
        }),
        ("huge header length", huge),
        ("data beyond file", file(valid, 4)),
        ("overlap", file(
            br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            12,
        )),
        ("out of range offsets", file(br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[1000,1008]}}"#, 8)),
        ("reversed offsets", file(br#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, 8)),
        ("shape overflow", file(br#"{"a":{"dtype":"F32","shape":[18446744073709551615,2],"data_offsets":[0,8]}}"#, 8)),
        ("size mismatch", file(br#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8)),
        ("gap (crate check)", file(br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, 16)),
        ("not json", file(b"{not json", 0)),
        ("not utf8", file(b"{\xff\xfe}", 0)),
        ("unknown dtype", file(br#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#, 8)),
    ];
    for (label, bytes) in cases {
        let err = open(&bytes).expect_err(label);
        let msg = err.to_string();
        assert!(
            msg.contains("model.safetensors"),
            "{label}: error does not name the file: {msg}"
        );
    }
    open(&file(valid, 8)).expect("valid file");
}

/// Length prefixes claiming 2^40 bytes or more are refused without reading further.
#[test]
fn huge_length_prefixes_are_refused_at_once() {
    for claim in [
        1u64 << 40,
        u64::MAX,
        larder_convert::safetensors::MAX_HEADER_LEN + 1,
    ] {
        let mut file = claim.to_le_bytes().to_vec();
        file.extend_from_slice(b"{}");
        let error = parse_header(&file, "x").unwrap_err().to_string();
        assert!(error.contains("exceeds the limit"), "{claim}: {error}");
    }
}

/// Property tests: hostile safetensors headers. Run with `PROPTEST_CASES` cases (256 by
/// default); `bench/fuzz` runs many more.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_header(&bytes, "x");
        }

        #[test]
        fn header_parser_never_panics_on_jsonish(
            len in 0u64..600,
            body in "\\{(\"[a-c]\":\\{\"dtype\":\"(F32|F16|BF16|I8)\",\"shape\":\\[[0-9]{0,3}(,[0-9]{0,3})?\\],\"data_offsets\":\\[[0-9]{1,3},[0-9]{1,3}\\]\\},?){0,3}\\}",
            data in 0usize..300,
        ) {
            let mut f = len.to_le_bytes().to_vec();
            f.extend_from_slice(body.as_bytes());
            f.resize(f.len() + data, 0);
            let _ = parse_header(&f, "x");
            let mut g = (body.len() as u64).to_le_bytes().to_vec();
            g.extend_from_slice(body.as_bytes());
            g.resize(g.len() + data, 0);
            if let Ok(h) = parse_header(&g, "x") {
                for e in h.entries {
                    prop_assert!(e.data.end <= g.len() - h.data_start);
                }
            }
        }
    }

    const DTYPES: [(&str, u64); 6] = [
        ("F32", 4),
        ("F16", 2),
        ("BF16", 2),
        ("I8", 1),
        ("F64", 8),
        ("Q4", 1),
    ];

    /// One tensor: dtype index, shape, and how its offsets are bent (0: as laid out).
    type Tensor = (usize, Vec<u64>, (u8, u64));

    fn tensor() -> impl Strategy<Value = Tensor> {
        let dim =
            prop_oneof![40 => 1u64..6, 4 => Just(0), 1 => Just(1u64 << 40), 1 => Just(u64::MAX)];
        let bend = prop_oneof![30 => Just((0u8, 0u64)), 1 => (1u8..4, 0u64..16), 1 => (1u8..4, Just(u64::MAX))];
        let dtype = prop_oneof![30 => 0..DTYPES.len() - 1, 1 => Just(DTYPES.len() - 1)];
        (dtype, proptest::collection::vec(dim, 0..4), bend)
    }

    /// A file laid out like a sound one, then bent: offsets shifted, widened or reversed, the
    /// length prefix or the data section off by some bytes.
    fn bent_file(tensors: &[Tensor], metadata: bool, length_bend: i64, data_bend: i64) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        if metadata {
            header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        }
        let mut at = 0u64;
        for (i, (dtype, shape, (how, by))) in tensors.iter().enumerate() {
            let (name, size) = DTYPES[*dtype];
            let bytes = shape
                .iter()
                .try_fold(size, |n, d| n.checked_mul(*d))
                .unwrap_or(u64::MAX);
            let (mut start, mut end) = (at, at.saturating_add(bytes));
            match how {
                1 => start = start.saturating_sub(*by),
                2 => end = end.saturating_add(*by),
                3 => std::mem::swap(&mut start, &mut end),
                _ => {}
            }
            header.insert(
                format!("t{i}"),
                serde_json::json!({"dtype": name, "shape": shape, "data_offsets": [start, end]}),
            );
            at = at.saturating_add(bytes);
        }
        let text = serde_json::to_vec(&header).unwrap();
        let length = (text.len() as i64 + length_bend).max(0) as u64;
        let data = (at.min(1 << 16) as i64 + data_bend).max(0) as usize;
        let mut out = length.to_le_bytes().to_vec();
        out.extend_from_slice(&text);
        out.resize(out.len() + data, 0);
        out
    }

    proptest! {
        /// Whatever a header claims, what is accepted lies inside the data section, does not
        /// overlap, and spans exactly what its shape and dtype need.
        #[test]
        fn header_parser_keeps_entries_inside(
            tensors in proptest::collection::vec(tensor(), 0..5),
            metadata in any::<bool>(),
            length_bend in prop_oneof![8 => Just(0i64), 1 => -4i64..4],
            data_bend in prop_oneof![8 => Just(0i64), 1 => -8i64..8],
        ) {
            let file = bent_file(&tensors, metadata, length_bend, data_bend);
            if let Ok(header) = parse_header(&file, "x") {
                prop_assert!(header.data_start <= file.len());
                let data_len = file.len() - header.data_start;
                for entry in &header.entries {
                    prop_assert!(entry.data.start <= entry.data.end && entry.data.end <= data_len);
                    let needed = entry.shape.iter().try_fold(entry.dtype.size(), |n, d| n.checked_mul(*d));
                    prop_assert_eq!(needed, Some(entry.data.len()));
                }
                for pair in header.entries.windows(2) {
                    prop_assert!(pair[0].data.end <= pair[1].data.start);
                }
                // The safetensors crate's own checks must not panic on what ours let through.
                let _ = open(&file);
            }
        }
    }
}

// ---- GPT-OSS's MXFP4 experts ----

mod mxfp4 {
    use std::collections::BTreeMap;

    use larder_convert::{
        ConvertError, GgufOptions, GgufReport, GgufType, SourceFiles, convert_to_gguf,
    };

    /// Layer 0's expert tensors, as the checkpoint names them.
    const GATE_UP: &str = "model.layers.0.mlp.experts.gate_up_proj";
    const DOWN: &str = "model.layers.0.mlp.experts.down_proj";

    /// One checkpoint tensor: safetensors dtype, shape and raw bytes.
    type Tensor = (&'static str, Vec<usize>, Vec<u8>);

    /// A 1-layer GPT-OSS as released (hidden 64, 2 heads of 16, 1 KV head, 2 experts of
    /// width 32, vocab 4), its experts MXFP4 `*_blocks`/`*_scales` pairs, written to disk
    /// tensor by tensor by [`GptOss::convert`] after a test has bent some of them.
    struct GptOss {
        config: serde_json::Value,
        tensors: BTreeMap<String, Tensor>,
    }

    impl GptOss {
        const HIDDEN: usize = 64;
        const FF: usize = 32;
        const EXPERTS: usize = 2;

        fn new() -> Self {
            let (h, ff, ne) = (Self::HIDDEN, Self::FF, Self::EXPERTS);
            let mut fx = GptOss {
                config: serde_json::json!({
                    "architectures": ["GptOssForCausalLM"], "hidden_size": h,
                    "intermediate_size": ff, "num_local_experts": ne, "num_experts_per_tok": 1,
                    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                    "head_dim": 16, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
                    "rope_theta": 150000, "sliding_window": 8, "swiglu_limit": 7.0,
                    "vocab_size": 4, "tie_word_embeddings": false, "attention_bias": false,
                    "quantization_config": {"quant_method": "mxfp4"}
                }),
                tensors: BTreeMap::new(),
            };
            fx.float("model.embed_tokens.weight", vec![4, h]);
            fx.float("lm_head.weight", vec![4, h]);
            fx.float("model.norm.weight", vec![h]);
            let p = "model.layers.0.";
            for (n, s) in [
                ("input_layernorm.weight", vec![h]),
                ("post_attention_layernorm.weight", vec![h]),
                ("self_attn.q_proj.weight", vec![32, h]),
                ("self_attn.k_proj.weight", vec![16, h]),
                ("self_attn.v_proj.weight", vec![16, h]),
                ("self_attn.o_proj.weight", vec![h, 32]),
                ("self_attn.o_proj.bias", vec![h]),
                ("self_attn.sinks", vec![2]),
                ("mlp.router.weight", vec![ne, h]),
                ("mlp.router.bias", vec![ne]),
                ("mlp.experts.gate_up_proj_bias", vec![ne, 2 * ff]),
                ("mlp.experts.down_proj_bias", vec![ne, h]),
            ] {
                fx.float(&format!("{p}{n}"), s);
            }
            // Codes of every value, every exponent 120 (2^-7).
            fx.mxfp4(GATE_UP, [ne, 2 * ff, h / 32]);
            fx.mxfp4(DOWN, [ne, h, ff / 32]);
            fx
        }

        /// An F32 tensor of 0.01s.
        fn float(&mut self, name: &str, shape: Vec<usize>) {
            let n: usize = shape.iter().product();
            let bytes = 0.01f32.to_le_bytes().repeat(n);
            self.tensors.insert(name.to_owned(), ("F32", shape, bytes));
        }

        /// A well-formed MXFP4 pair `{stem}_blocks` / `{stem}_scales` of `blocks` blocks.
        fn mxfp4(&mut self, stem: &str, blocks: [usize; 3]) {
            let n: usize = blocks.iter().product();
            let codes = (0..n * 16).map(|i| (i * 37) as u8).collect();
            let mut shape = blocks.to_vec();
            self.set(&format!("{stem}_scales"), "U8", shape.clone(), vec![120; n]);
            shape.push(16);
            self.set(&format!("{stem}_blocks"), "U8", shape, codes);
        }

        /// Replaces (or adds) a tensor.
        fn set(&mut self, name: &str, dtype: &'static str, shape: Vec<usize>, bytes: Vec<u8>) {
            self.tensors.insert(name.to_owned(), (dtype, shape, bytes));
        }

        /// Replaces a tensor by one of `dtype` (elements of `size` bytes, all zero) and `shape`.
        fn reshape(&mut self, name: &str, dtype: &'static str, size: usize, shape: Vec<usize>) {
            let n: usize = shape.iter().product();
            self.set(name, dtype, shape, vec![0; n * size]);
        }

        fn remove(&mut self, name: &str) {
            self.tensors.remove(name).expect(name);
        }

        fn bytes_mut(&mut self, name: &str) -> &mut Vec<u8> {
            &mut self.tensors.get_mut(name).expect(name).2
        }

        /// Writes config.json, a 4-token tokenizer.json and one shard, and converts them to F32.
        fn convert(&self) -> Result<GgufReport, ConvertError> {
            let dir = tempfile::tempdir().unwrap();
            let tokenizer = serde_json::json!({
                "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
                "added_tokens": [{"id": 3, "content": "<s>", "special": true}]
            });
            let mut header = serde_json::Map::new();
            let mut data = Vec::new();
            for (name, (dtype, shape, bytes)) in &self.tensors {
                let start = data.len();
                data.extend_from_slice(bytes);
                header.insert(
                    name.clone(),
                    serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
                );
            }
            let header = serde_json::to_vec(&header).unwrap();
            let mut shard = (header.len() as u64).to_le_bytes().to_vec();
            shard.extend_from_slice(&header);
            shard.extend_from_slice(&data);
            let mut files = BTreeMap::new();
            for (name, bytes) in [
                ("config.json", serde_json::to_vec(&self.config).unwrap()),
                ("tokenizer.json", serde_json::to_vec(&tokenizer).unwrap()),
                ("model.safetensors", shard),
            ] {
                let path = dir.path().join(name);
                std::fs::write(&path, bytes).unwrap();
                files.insert(name.to_owned(), path);
            }
            convert_to_gguf(
                &SourceFiles::new(files),
                GgufType::F32,
                &mut Vec::new(),
                &GgufOptions::default(),
            )
        }
    }

    /// Asserts that `e` is an [`ConvertError::InvalidMxfp4`] about `tensor` whose message says
    /// each of `what`.
    fn assert_invalid(label: &str, e: &ConvertError, tensor: &str, what: &[&str]) {
        let msg = e.to_string();
        assert!(
            matches!(e, ConvertError::InvalidMxfp4 { tensor: t, .. } if t == tensor),
            "{label}: not an MXFP4 error about `{tensor}`: {msg}"
        );
        assert!(msg.contains(&format!("`{tensor}`")), "{label}: {msg}");
        for w in what {
            assert!(msg.contains(w), "{label}: {msg:?} does not say {w:?}");
        }
    }

    #[test]
    fn fixture_converts() {
        let r = GptOss::new().convert().unwrap();
        assert_eq!(r.types.get("MXFP4"), Some(&3), "{r:?}");
    }

    /// `*_blocks` must be U8: I8 has the same size (it would be repacked as is), F16 twice
    /// the size (half of it would be read as codes).
    #[test]
    fn mxfp4_blocks_of_another_dtype_are_refused() {
        for stem in [GATE_UP, DOWN] {
            let blocks = format!("{stem}_blocks");
            for (dtype, size) in [("I8", 1), ("F16", 2), ("BF16", 2)] {
                let mut fx = GptOss::new();
                let shape = fx.tensors[&blocks].1.clone();
                fx.reshape(&blocks, dtype, size, shape);
                let e = fx.convert().unwrap_err();
                let dtype = format!("dtype {dtype}, expected U8");
                assert_invalid(&blocks, &e, &blocks, &[&dtype]);
            }
        }
    }

    #[test]
    fn mxfp4_scales_of_another_dtype_are_refused() {
        for stem in [GATE_UP, DOWN] {
            let scales = format!("{stem}_scales");
            for (dtype, size) in [("I8", 1), ("F16", 2), ("F32", 4)] {
                let mut fx = GptOss::new();
                let shape = fx.tensors[&scales].1.clone();
                fx.reshape(&scales, dtype, size, shape);
                let e = fx.convert().unwrap_err();
                let dtype = format!("dtype {dtype}, expected U8");
                assert_invalid(&scales, &e, &scales, &[&dtype, "E8M0"]);
            }
        }
    }

    /// Either half of a pair without the other is refused, naming both; so are scales left
    /// over beside dequantized experts (they would be silently dropped).
    #[test]
    fn mxfp4_pair_missing_a_half_is_refused() {
        for stem in [GATE_UP, DOWN] {
            let (blocks, scales) = (format!("{stem}_blocks"), format!("{stem}_scales"));
            let mut fx = GptOss::new();
            fx.remove(&scales);
            let e = fx.convert().unwrap_err();
            assert_invalid(
                "no scales",
                &e,
                &blocks,
                &[&format!("`{scales}` are missing")],
            );

            let mut fx = GptOss::new();
            fx.remove(&blocks);
            let e = fx.convert().unwrap_err();
            assert_invalid(
                "no blocks",
                &e,
                &scales,
                &[&format!("`{blocks}` are missing")],
            );
        }
        // The dequantized down_proj ([E, ff, hidden], input-major) beside stray scales.
        let mut fx = GptOss::new();
        fx.remove(&format!("{DOWN}_blocks"));
        fx.float(DOWN, vec![GptOss::EXPERTS, GptOss::FF, GptOss::HIDDEN]);
        let scales = format!("{DOWN}_scales");
        let e = fx.convert().unwrap_err();
        assert_invalid("stray scales", &e, &scales, &["_blocks` are missing"]);
        fx.remove(&scales);
        fx.convert().expect("dequantized down_proj");
    }

    /// Blocks that are not 16 bytes, scales that do not pair one to one with the blocks, and
    /// blocks that disagree with config.json (experts, rows, blocks per row).
    #[test]
    fn mxfp4_shapes_that_disagree_are_refused() {
        let (blocks, scales) = (format!("{GATE_UP}_blocks"), format!("{GATE_UP}_scales"));
        // gate_up: 2 experts, 2·32 rows, 64 / 32 blocks per row.
        for (label, shape) in [
            ("8-byte blocks", vec![2, 64, 4, 8]),
            ("32-byte blocks", vec![2, 64, 1, 32]),
            ("codes not in blocks", vec![2, 64, 32]),
            ("a fifth dimension", vec![2, 64, 2, 16, 1]),
        ] {
            let mut fx = GptOss::new();
            fx.reshape(&blocks, "U8", 1, shape);
            let e = fx.convert().unwrap_err();
            assert_invalid(label, &e, &blocks, &["does not end in 16", "16 bytes"]);
        }
        for (label, shape) in [
            ("fewer scales per row", vec![2, 64, 1]),
            ("more scales per row", vec![2, 64, 3]),
            ("scales of half the rows", vec![2, 32, 2]),
            ("scales of one expert", vec![1, 64, 2]),
            ("scales flattened", vec![2, 128]),
            ("scales with a unit dimension", vec![2, 64, 2, 1]),
        ] {
            let mut fx = GptOss::new();
            fx.reshape(&scales, "U8", 1, shape);
            let e = fx.convert().unwrap_err();
            assert_invalid(
                label,
                &e,
                &scales,
                &["does not pair", &blocks, "[2, 64, 2]"],
            );
        }
        // Blocks and scales that agree with each other but not with config.json: the pair is
        // reshaped together, so only the config can catch it.
        for (label, dims) in [
            ("three experts", [3, 64, 2]),
            ("rows of intermediate_size, not twice it", [2, 32, 2]),
            ("rows of hidden_size / 16 blocks", [2, 64, 4]),
        ] {
            let mut fx = GptOss::new();
            fx.mxfp4(GATE_UP, dims);
            let e = fx.convert().unwrap_err();
            assert!(
                matches!(&e, ConvertError::ShapeMismatch { tensor, expected, .. }
                    if *tensor == blocks && *expected == [2, 64, 2, 16]),
                "{label}: {e}"
            );
        }
    }

    /// Sizes in config.json that the MXFP4 tensors do not have.
    #[test]
    fn mxfp4_rows_follow_config() {
        let down = format!("{DOWN}_blocks");
        // intermediate_size 64: down_proj's rows hold 2 blocks, the checkpoint's 1.
        let mut fx = GptOss::new();
        fx.config["intermediate_size"] = 64.into();
        let e = fx.convert().unwrap_err();
        assert!(
            matches!(&e, ConvertError::ShapeMismatch { tensor, actual, expected }
                if *tensor == down && *actual == [2, 64, 1, 16] && *expected == [2, 64, 2, 16]),
            "{e}"
        );
        // Not a whole number of blocks.
        fx.config["intermediate_size"] = 48.into();
        let e = fx.convert().unwrap_err().to_string();
        assert!(e.contains(&down) && e.contains("multiple of 32"), "{e}");
        // So large that twice it overflows: an error, not an arithmetic panic.
        let mut fx = GptOss::new();
        fx.remove(&down);
        fx.remove(&format!("{DOWN}_scales"));
        fx.config["intermediate_size"] = (1u64 << 63).into();
        let e = fx.convert().unwrap_err();
        assert!(
            matches!(&e, ConvertError::ShapeMismatch { tensor, .. } if tensor.ends_with("gate_up_proj_bias")),
            "{e}"
        );
    }

    /// An exponent byte of 0xFF is E8M0's NaN. llama.cpp's converter copies scale bytes into
    /// its MXFP4 blocks unchecked, but ggml counts 0xFF as invalid block data
    /// (`ggml_validate_row_data`, which `--check-tensors` runs on load) and its decoder reads
    /// it as 2^127, so the weights of that block would come out huge or infinite. Larder
    /// refuses it like a NaN in a float checkpoint, naming the scales tensor and the flat
    /// index of the byte; 0xFE, the largest finite exponent, is converted.
    #[test]
    fn mxfp4_nan_scale_is_refused() {
        // down: [2, 64, 1]; gate_up: [2, 64, 2], where row 5 (odd) belongs to the up half.
        for (stem, index) in [(DOWN, 0), (DOWN, 127), (GATE_UP, 2 * 5 + 1), (GATE_UP, 255)] {
            let scales = format!("{stem}_scales");
            let mut fx = GptOss::new();
            fx.bytes_mut(&scales)[index] = 0xff;
            let e = fx.convert().unwrap_err();
            assert!(
                matches!(&e, ConvertError::NonFinite { tensor, index: i } if *tensor == scales && *i == index),
                "{stem} {index}: {e}"
            );
            assert!(e.to_string().contains(&scales), "{e}");
            fx.bytes_mut(&scales)[index] = 0xfe;
            fx.convert().expect("0xFE is finite");
        }
    }

    /// Whatever dtypes, shapes and bytes a pair has, the conversion gives an error or a
    /// file, never a panic; and a file only from a well-formed pair. `PROPTEST_CASES` cases
    /// (256 by default); outside `fuzz`, so `bench/fuzz`'s safetensors target skips it.
    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        const DTYPES: [(&str, usize); 4] = [("U8", 1), ("I8", 1), ("F16", 2), ("BOOL", 1)];

        /// One side of a pair: dropped, or a dtype and a shape (a well-formed one bent by
        /// one dimension changed, added or removed).
        fn side() -> impl Strategy<Value = Option<(usize, u8, usize, usize)>> {
            let dtype = prop_oneof![6 => Just(0usize), 1 => 1..DTYPES.len()];
            let bend = prop_oneof![6 => Just(0u8), 1 => 1u8..4];
            prop_oneof![
                1 => Just(None),
                12 => (dtype, bend, 0usize..5, 0usize..40).prop_map(Some),
            ]
        }

        fn bent(mut shape: Vec<usize>, how: u8, at: usize, to: usize) -> Vec<usize> {
            let at = at % (shape.len() + 1);
            match how {
                1 if at < shape.len() => shape[at] = to,
                2 => shape.insert(at, to),
                3 if at < shape.len() => {
                    shape.remove(at);
                }
                _ => {}
            }
            shape
        }

        proptest! {
            #[test]
            fn mxfp4_pairs_never_panic(
                down in any::<bool>(),
                blocks in side(),
                scales in side(),
                nan in proptest::option::weighted(0.2, 0usize..512),
            ) {
                let stem = if down { DOWN } else { GATE_UP };
                let mut fx = GptOss::new();
                let mut well_formed = nan.is_none();
                for (name, side) in [(format!("{stem}_blocks"), blocks), (format!("{stem}_scales"), scales)] {
                    match side {
                        None => {
                            fx.remove(&name);
                            well_formed = false;
                        }
                        Some((dtype, how, at, to)) => {
                            let shape = fx.tensors[&name].1.clone();
                            let new = bent(shape.clone(), how, at, to);
                            well_formed &= dtype == 0 && new == shape;
                            let (dtype, size) = DTYPES[dtype];
                            let n: usize = new.iter().product();
                            let bytes = (0..n * size).map(|i| (i * 61 % 255) as u8).collect();
                            fx.set(&name, dtype, new, bytes);
                        }
                    }
                }
                if let Some(i) = nan
                    && let Some((_, _, bytes)) = fx.tensors.get_mut(&format!("{stem}_scales"))
                    && !bytes.is_empty()
                {
                    let at = i % bytes.len();
                    bytes[at] = 0xff;
                }
                let result = fx.convert();
                prop_assert_eq!(result.is_ok(), well_formed, "{:?}", result.map(|_| ()));
            }
        }
    }
}
