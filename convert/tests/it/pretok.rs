//! `tokenizer.ggml.pre`: our re-implementation of llama.cpp's fingerprint
//! (encode a probe text, hash the ids) must encode exactly like HF
//! `tokenizers`.

use larder_convert::chkhsh::{CHKTXT, encode};

use crate::common::run_py;

#[test]
fn probe_text_encodes_like_hf_tokenizers() {
    let root = tempfile::tempdir().unwrap();
    let text_path = root.path().join("chktxt.txt");
    std::fs::write(&text_path, CHKTXT).unwrap();
    for arch in ["llama", "qwen2"] {
        let dir = root.path().join(arch);
        run_py(
            "make_model.py",
            &[dir.to_str().unwrap(), arch, "f32", "bpe"],
        );
        let tj_path = dir.join("tokenizer.json");
        let tj: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&tj_path).unwrap()).unwrap();
        let ours = encode(&tj, CHKTXT).expect("supported tokenizer.json shape");
        let theirs: Vec<u32> = serde_json::from_str(
            run_py(
                "encode_ids.py",
                &[tj_path.to_str().unwrap(), text_path.to_str().unwrap()],
            )
            .trim(),
        )
        .unwrap();
        assert_eq!(ours, theirs, "{arch}");
        // Other texts too, including ones that exercise merges.
        for text in [
            "hello world, hello larder 12345",
            "  The quick brown fox\n\n\tjumps!!",
        ] {
            std::fs::write(&text_path, text).unwrap();
            let theirs: Vec<u32> = serde_json::from_str(
                run_py(
                    "encode_ids.py",
                    &[tj_path.to_str().unwrap(), text_path.to_str().unwrap()],
                )
                .trim(),
            )
            .unwrap();
            assert_eq!(encode(&tj, text).unwrap(), theirs, "{arch}: {text:?}");
        }
        std::fs::write(&text_path, CHKTXT).unwrap();
    }
}
