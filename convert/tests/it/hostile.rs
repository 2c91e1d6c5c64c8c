//! Hostile safetensors files must produce errors, never panics.

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
