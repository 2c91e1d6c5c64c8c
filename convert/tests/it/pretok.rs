//! `tokenizer.ggml.pre`: our re-implementation of llama.cpp's fingerprint
//! (encode a probe text, hash the ids) must encode exactly like HF
//! `tokenizers`.

use larder_convert::chkhsh::{CHKTXT, encode};

use crate::common::{llama_cpp_dir, run_py};

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

/// The real Llama 3, Qwen2 and GPT-2 vocabularies in llama.cpp's
/// `models/ggml-vocab-*.gguf` must fingerprint to exactly the hashes
/// llama.cpp's converter lists for them. The tree is `$LARDER_LLAMA_CPP_SRC`
/// (a llama.cpp checkout, or the `vendor/llama.cpp` of the llama-cpp-python
/// sdist), else the `llama.cpp/` that `tests/build_llama_cpp.sh` keeps those
/// three files in ([`llama_cpp_dir`]; the test fails without it).
#[test]
fn real_vocabularies_hash_like_llama_cpp() {
    let src = std::env::var_os("LARDER_LLAMA_CPP_SRC").map_or_else(
        || llama_cpp_dir().join("llama.cpp"),
        std::path::PathBuf::from,
    );
    let root = tempfile::tempdir().unwrap();
    for kind in ["llama-bpe", "qwen2", "gpt-2"] {
        let vocab = src.join(format!("models/ggml-vocab-{kind}.gguf"));
        let out = root.path().join(format!("{kind}.json"));
        run_py(
            "vocab_to_tokenizer_json.py",
            &[vocab.to_str().unwrap(), kind, out.to_str().unwrap()],
        );
        let tj: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let hash = larder_convert::chkhsh::fingerprint(&tj).expect("supported shape");
        assert_eq!(
            larder_convert::chkhsh::lookup(&hash),
            Some(kind),
            "{kind}: fingerprint {hash}"
        );
    }
}
