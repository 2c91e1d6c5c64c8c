//! Real Hub shapes, recorded from huggingface.co by others and published with the official
//! clients' tests; nothing here is made up. Each fixture says where it comes from.
//!
//! - [`BERT_BASE_UNCASED_INFO`]: the body of `GET /api/models/google-bert/bert-base-uncased`
//!   (4420 bytes, `Content-Length: 4420`), byte for byte as recorded in huggingface_hub's cassette
//!   `tests/cassettes/InferenceApiTest.test_simple_inference.yaml` (huggingface/huggingface_hub
//!   at commit ee0a4510f4bc15e26cb722be2efc2bdb01383ca0, recorded 2025-01-22). The same cassette
//!   records the rename: `GET /api/models/bert-base-uncased` answered `307` with
//!   `Location: /api/models/google-bert/bert-base-uncased`, `Content-Type: text/plain;
//!   charset=utf-8` and the body [`BERT_BASE_UNCASED_REDIRECT_BODY`].
//! - [`gpt2_info`]: the values huggingface.js's `modelInfo` test asserts for
//!   `openai-community/gpt2` (`packages/hub/src/lib/model-info.spec.ts`, huggingface/huggingface.js
//!   at commit fe42e68017ffc76d09922ea8f9b38a6964345710): `_id`, `author`, `gated`, `private`
//!   and `pipeline_tag` (read as `task`). The Hub serves that repo under the old name `gpt2` too.
//! - [`glue_info`]: the values huggingface.js's `datasetInfo` test asserts for `nyu-mll/glue`
//!   (`packages/hub/src/lib/dataset-info.spec.ts`, same commit): `_id`, `author`, `gated`,
//!   `private`.

use serde_json::{Value, json};

/// The recorded model info of `google-bert/bert-base-uncased` (see the module doc).
pub const BERT_BASE_UNCASED_INFO: &str =
    include_str!("../fixtures/google-bert--bert-base-uncased.info.json");

/// The repo's old name, which the Hub redirects.
pub const BERT_BASE_UNCASED_OLD_NAME: &str = "bert-base-uncased";

/// The repo's name now.
pub const BERT_BASE_UNCASED: &str = "google-bert/bert-base-uncased";

/// The body of the recorded `307` for the old name.
pub const BERT_BASE_UNCASED_REDIRECT_BODY: &str =
    "Temporary Redirect. Redirecting to /api/models/google-bert/bert-base-uncased";

/// [`BERT_BASE_UNCASED_INFO`] parsed.
pub fn bert_base_uncased_info() -> Value {
    serde_json::from_str(BERT_BASE_UNCASED_INFO).unwrap_or(Value::Null)
}

/// The fields of `openai-community/gpt2`'s info that huggingface.js's tests assert.
pub fn gpt2_info() -> Value {
    json!({
        "_id": "621ffdc036468d709f17434d",
        "id": "openai-community/gpt2",
        "author": "openai-community",
        "gated": false,
        "private": false,
        "pipeline_tag": "text-generation",
    })
}

/// The fields of `nyu-mll/glue`'s dataset info that huggingface.js's tests assert.
pub fn glue_info() -> Value {
    json!({
        "_id": "621ffdd236468d709f181e3f",
        "id": "nyu-mll/glue",
        "author": "nyu-mll",
        "gated": false,
        "private": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recording_is_intact() {
        assert_eq!(BERT_BASE_UNCASED_INFO.len(), 4420);
        let info = bert_base_uncased_info();
        assert_eq!(info["id"], BERT_BASE_UNCASED);
        assert_eq!(info["pipeline_tag"], "fill-mask");
        assert_eq!(info["library_name"], "transformers");
        assert_eq!(info["safetensors"]["total"], 110_106_428);
    }
}
