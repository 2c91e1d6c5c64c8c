//! Hostile safetensors files must produce errors, never panics.

use larder_convert::ConvertError;
use larder_convert::safetensors::{Checkpoint, parse_header};
use proptest::prelude::*;

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
