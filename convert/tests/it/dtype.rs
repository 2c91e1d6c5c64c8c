//! `convert_dtype`: re-sharded safetensors output, index, copied files.

use larder_convert::safetensors::{Checkpoint, StDtype};
use larder_convert::{Dtype, DtypeOptions, SourceFiles, convert_dtype_with};

use crate::common::run_py;

#[test]
fn bf16_checkpoint_to_f16_and_f32() {
    let root = tempfile::tempdir().unwrap();
    let model = root.path().join("model");
    run_py(
        "make_model.py",
        &[model.to_str().unwrap(), "llama", "bf16", "bpe"],
    );
    let src = SourceFiles::from_dir(&model).unwrap();
    let source = Checkpoint::open(&src).unwrap();
    for (dtype, st, shard_bytes) in [
        (Dtype::F16, StDtype::F16, 1_000_000u64),
        (Dtype::F32, StDtype::F32, u64::MAX),
    ] {
        let out = root.path().join(format!("out-{dtype:?}"));
        std::fs::create_dir_all(&out).unwrap();
        let opts = DtypeOptions {
            max_shard_bytes: shard_bytes,
            progress: None,
            cancel: None,
        };
        let report = convert_dtype_with(&src, dtype, &out, &opts).unwrap();
        assert_eq!(report.tensors, source.tensors().len());
        if shard_bytes == u64::MAX {
            assert_eq!(report.shards, vec!["model.safetensors".to_owned()]);
            assert!(!out.join("model.safetensors.index.json").exists());
        } else {
            assert!(report.shards.len() > 1, "{:?}", report.shards);
            assert!(out.join("model.safetensors.index.json").exists());
        }
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            assert!(report.copied.iter().any(|c| c == f), "{f} not copied");
        }
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["torch_dtype"], dtype.torch_name());
        // Re-open (our validation + the safetensors crate) and compare values.
        let converted = Checkpoint::open(&SourceFiles::from_dir(&out).unwrap()).unwrap();
        assert_eq!(converted.tensors().len(), source.tensors().len());
        for (name, t) in source.tensors() {
            let c = converted.get(name).unwrap();
            assert_eq!(c.dtype, st, "{name}");
            assert_eq!(c.shape, t.shape, "{name}");
            let mut a = vec![0.0f32; t.numel()];
            let mut b = vec![0.0f32; t.numel()];
            source.read_f32(name, t, 0, &mut a).unwrap();
            converted.read_f32(name, c, 0, &mut b).unwrap();
            for (x, y) in a.iter().zip(&b) {
                let expect = if dtype == Dtype::F16 {
                    half::f16::from_f32(*x).to_f32()
                } else {
                    *x
                };
                assert_eq!(expect.to_bits(), y.to_bits(), "{name}");
            }
        }
    }
}
