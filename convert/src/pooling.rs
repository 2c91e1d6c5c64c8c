//! The pooling of sentence-transformers embedding checkpoints, as llama.cpp's
//! converter reads it for Qwen2 and Qwen3: `modules.json` names a `*Pooling`
//! module whose `config.json` gives the mode, written as `{arch}.pooling_type`
//! (Qwen3-Embedding pools its last token). Checkpoints without
//! `modules.json` get no key.

use serde_json::Value;

use crate::SourceFiles;
use crate::error::{ConvertError, Result};

/// llama.cpp's `LLAMA_POOLING_TYPE_MEAN`.
pub const MEAN: u32 = 1;
/// llama.cpp's `LLAMA_POOLING_TYPE_CLS`.
pub const CLS: u32 = 2;
/// llama.cpp's `LLAMA_POOLING_TYPE_LAST`.
pub const LAST: u32 = 3;

fn parse(src: &SourceFiles, name: &str) -> Result<Value> {
    serde_json::from_slice(&src.read(name)?).map_err(|e| ConvertError::json(name, e.to_string()))
}

/// Python truthiness of a JSON value, as the converter tests the flags.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// The pooling type declared by `modules.json`, if any.
pub fn pooling_type(src: &SourceFiles) -> Result<Option<u32>> {
    const MODULES: &str = "modules.json";
    if src.path(MODULES).is_none() {
        return Ok(None);
    }
    let modules = parse(src, MODULES)?;
    let list = modules
        .as_array()
        .ok_or_else(|| ConvertError::json(MODULES, "not a list of modules"))?;
    let Some(dir) = list.iter().find_map(|m| {
        let ty = m.get("type")?.as_str()?;
        ty.ends_with("Pooling")
            .then(|| m.get("path").and_then(Value::as_str))
            .flatten()
    }) else {
        return Ok(None);
    };
    let dir = dir.trim_matches('/');
    let name = if dir.is_empty() {
        "config.json".to_owned()
    } else {
        format!("{dir}/config.json")
    };
    let cfg = parse(src, &name)?;
    let ty = if truthy(cfg.get("pooling_mode_mean_tokens")) {
        MEAN
    } else if truthy(cfg.get("pooling_mode_cls_token")) {
        CLS
    } else if truthy(cfg.get("pooling_mode_lasttoken")) {
        LAST
    } else {
        match cfg.get("pooling_mode").and_then(Value::as_str) {
            Some("mean") => MEAN,
            Some("cls") => CLS,
            Some("lasttoken") => LAST,
            _ => {
                return Err(ConvertError::json(
                    &name,
                    "unsupported pooling mode (mean, cls and lasttoken are)",
                ));
            }
        }
    };
    Ok(Some(ty))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn files(entries: &[(&str, &str)]) -> (tempfile::TempDir, SourceFiles) {
        let dir = tempfile::tempdir().unwrap();
        let mut map = BTreeMap::new();
        for (i, (name, text)) in entries.iter().enumerate() {
            let p = dir.path().join(format!("blob{i}"));
            std::fs::write(&p, text).unwrap();
            map.insert((*name).to_owned(), p);
        }
        (dir, SourceFiles::new(map))
    }

    const MODULES: &str = r#"[
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
    ]"#;

    #[test]
    fn modes() {
        let (_d, src) = files(&[]);
        assert_eq!(pooling_type(&src).unwrap(), None);
        for (cfg, want) in [
            (
                r#"{"pooling_mode_cls_token": false, "pooling_mode_mean_tokens": false, "pooling_mode_lasttoken": true}"#,
                LAST,
            ),
            (r#"{"pooling_mode_mean_tokens": true}"#, MEAN),
            (r#"{"pooling_mode_cls_token": true}"#, CLS),
            (r#"{"pooling_mode": "lasttoken"}"#, LAST),
        ] {
            let (_d, src) = files(&[("modules.json", MODULES), ("1_Pooling/config.json", cfg)]);
            assert_eq!(pooling_type(&src).unwrap(), Some(want), "{cfg}");
        }
    }

    #[test]
    fn errors_name_the_file() {
        let (_d, src) = files(&[("modules.json", MODULES)]);
        let e = pooling_type(&src).unwrap_err();
        assert!(
            matches!(&e, ConvertError::MissingFile(f) if f == "1_Pooling/config.json"),
            "{e}"
        );
        let (_d, src) = files(&[
            ("modules.json", MODULES),
            (
                "1_Pooling/config.json",
                r#"{"pooling_mode_max_tokens": true}"#,
            ),
        ]);
        let e = pooling_type(&src).unwrap_err();
        assert!(e.to_string().contains("1_Pooling/config.json"), "{e}");
        let (_d, src) = files(&[("modules.json", "{")]);
        let e = pooling_type(&src).unwrap_err();
        assert!(e.to_string().contains("modules.json"), "{e}");
    }
}
