//! The upstream's repo info as it was sent, kept so a mirror can pass it on.
//!
//! The Hub's model and dataset info carries far more than Larder reads (`pipeline_tag`,
//! `library_name`, `config`, `transformersInfo`, `safetensors`, `gguf`, `model-index`,
//! `widgetData`, `createdAt`, the real `lastModified`, ...). The JSON object is kept as fetched,
//! minus `siblings` (the mirror lists a commit's files from its own tree; a big repo's siblings
//! are most of the document), and only when it is small: a document over
//! [`MAX_INFO_PARSE_BYTES`], or over [`MAX_KEPT_INFO_BYTES`] once the siblings are gone, is not
//! kept at all (the mirror then answers with what it knows itself). Values are kept whatever
//! their type: fields Larder does not own are passed through, never interpreted.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::types::{RepoId, RepoInfo};

use crate::registry::CommitId;

/// Largest info document whose fields are kept (bigger ones are used, not kept).
pub const MAX_INFO_PARSE_BYTES: usize = 8 << 20;
/// Largest kept info (without `siblings`), as stored.
pub const MAX_KEPT_INFO_BYTES: usize = 1 << 20;

/// What `repo_info` learnt from the upstream.
#[derive(Debug, Clone)]
pub struct FetchedInfo {
    /// The fields Larder reads.
    pub info: RepoInfo,
    /// The commit the revision resolved to (`info.sha`, checked).
    pub commit: CommitId,
    /// The name the repo lives under now (differs from the one asked when the upstream
    /// redirected: a renamed repo or a case mismatch).
    pub canonical: RepoId,
    /// The info JSON object as sent, without `siblings`; `None` when it was too large.
    pub upstream_json: Option<String>,
}

impl FetchedInfo {
    /// Whether the upstream redirected the name asked for to another one.
    pub fn renamed_from<'a>(&self, asked: &'a RepoId) -> Option<&'a RepoId> {
        (self.canonical != *asked).then_some(asked)
    }
}

/// The JSON object of an info answer without its `siblings`, serialised, when it is small
/// enough to keep (see the module doc); `None` otherwise, or when it is not a JSON object.
pub fn keep_upstream_info(body: &[u8]) -> Option<String> {
    if body.len() > MAX_INFO_PARSE_BYTES {
        return None;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let kept = deserializer
        .deserialize_map(WithoutSiblings)
        .ok()
        .filter(|_| deserializer.end().is_ok())?;
    let text = serde_json::to_string(&kept).ok()?;
    (text.len() <= MAX_KEPT_INFO_BYTES).then_some(text)
}

/// Reads a JSON object into a map, skipping `siblings` without building it.
struct WithoutSiblings;

impl<'de> Visitor<'de> for WithoutSiblings {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a repo info object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if key == "siblings" {
                access.next_value::<IgnoredAny>()?;
            } else {
                let value = access.next_value::<Value>()?;
                map.insert(key, value);
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_but_siblings() {
        let body = br#"{"id":"a/b","pipeline_tag":42,"config":{"x":[1,"y"]},"siblings":[{"rfilename":"a"}]}"#;
        let kept: Value = serde_json::from_str(&keep_upstream_info(body).unwrap()).unwrap();
        assert_eq!(kept["pipeline_tag"], 42);
        assert_eq!(kept["config"]["x"][1], "y");
        assert!(kept.get("siblings").is_none());
    }

    /// Nesting far deeper than any info is refused by the JSON reader's depth limit, not by
    /// running out of stack.
    #[test]
    fn info_deep_nesting_is_refused() {
        let deep = format!(
            "{{\"config\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(keep_upstream_info(deep.as_bytes()).is_none());
        assert!(serde_json::from_str::<RepoInfo>(&deep.replace("config", "cardData")).is_err());
    }

    #[test]
    fn refuses_what_is_not_a_small_object() {
        assert!(keep_upstream_info(b"[1,2]").is_none());
        assert!(keep_upstream_info(b"{\"a\":1} trailing").is_none());
        let big = format!("{{\"config\":\"{}\"}}", "x".repeat(MAX_KEPT_INFO_BYTES));
        assert!(keep_upstream_info(big.as_bytes()).is_none());
        // Huge siblings alone do not stop the rest from being kept.
        let siblings = format!(
            "{{\"id\":\"a\",\"siblings\":[{}{{}}]}}",
            "{\"rfilename\":\"f\"},".repeat(100_000)
        );
        assert!(siblings.len() > MAX_KEPT_INFO_BYTES);
        assert_eq!(
            keep_upstream_info(siblings.as_bytes()).unwrap(),
            "{\"id\":\"a\"}"
        );
    }
}

/// Property tests: hostile info documents (see `crate::fuzzing`).
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::fuzzing::any_text;
    use proptest::prelude::*;

    /// Any JSON value, a few levels deep.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any_text(4).prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(any_text(3), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn check_kept(kept: Option<String>) -> Result<(), TestCaseError> {
        if let Some(text) = kept {
            prop_assert!(text.len() <= MAX_KEPT_INFO_BYTES);
            let object: Map<String, Value> = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("kept info is not an object: {e}")))?;
            prop_assert!(!object.contains_key("siblings"));
        }
        Ok(())
    }

    proptest! {
        /// Whatever the upstream sends as info, what is kept is a small object without
        /// `siblings`, and the fields Larder reads parse or are refused without a panic.
        #[test]
        fn info_hostile_documents(
            fields in proptest::collection::vec((prop_oneof![Just("siblings".to_owned()), Just("id".to_owned()), Just("sha".to_owned()), any_text(3)], json_value()), 0..8),
        ) {
            let mut body = b"{".to_vec();
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                // Written by hand so that a key may repeat, as hostile JSON can.
                body.extend(serde_json::to_vec(key).unwrap());
                body.push(b':');
                body.extend(serde_json::to_vec(value).unwrap());
            }
            body.push(b'}');
            check_kept(keep_upstream_info(&body))?;
            let _ = serde_json::from_slice::<RepoInfo>(&body);
        }

        /// Arbitrary bytes as info: nothing kept but a small object, never a panic.
        #[test]
        fn info_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            check_kept(keep_upstream_info(&bytes))?;
            let _ = serde_json::from_slice::<RepoInfo>(&bytes);
        }
    }
}
