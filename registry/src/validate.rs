//! Checks on values before they reach SQL. Everything recorded came from upstream, which is
//! hostile input (architecture.md, "Invariants"); the schema's CHECK constraints back these up,
//! but failing here gives an error that says which value was wrong.

use crate::chunk_index::XetRecord;
use crate::digest::is_lower_hex;
use crate::error::RegistryError;

fn invalid(field: &'static str, value: &str, reason: &'static str) -> RegistryError {
    RegistryError::InvalidInput {
        field,
        value: value.to_owned(),
        reason,
    }
}

/// A blob's Xet chunking: the blob's sha256 and a Xet hash of 64 lowercase hex.
pub(crate) fn xet_record(record: &XetRecord) -> Result<(), RegistryError> {
    if !is_lower_hex(&record.xet_hash, 64) {
        return Err(invalid(
            "xet_hash",
            &record.xet_hash,
            "expected 64 lowercase hex digits",
        ));
    }
    Ok(())
}

/// Is `value` a full git object id (40 lowercase hex)?
pub(crate) fn is_git_sha(value: &str) -> bool {
    is_lower_hex(value, 40)
}

/// A git commit or blob id: 40 lowercase hex.
pub(crate) fn git_sha(field: &'static str, value: &str) -> Result<(), RegistryError> {
    if is_git_sha(value) {
        Ok(())
    } else {
        Err(invalid(field, value, "expected 40 lowercase hex digits"))
    }
}

/// A repo name: `org/name` or `name`, each part non-empty, no `.`/`..` parts, no NUL or `\`.
pub(crate) fn repo_name(value: &str) -> Result<(), RegistryError> {
    let parts: Vec<&str> = value.split('/').collect();
    if parts.len() > 2 {
        return Err(invalid("repo name", value, "expected `org/name` or `name`"));
    }
    if parts
        .iter()
        .any(|part| part.is_empty() || *part == "." || *part == ".." || has_bad_char(part))
    {
        return Err(invalid(
            "repo name",
            value,
            "parts must be non-empty, not `.` or `..`, without NUL or `\\`",
        ));
    }
    Ok(())
}

/// A path inside a repo: relative, `/`-separated, no empty, `.` or `..` components, no NUL or `\`.
pub(crate) fn file_path(value: &str) -> Result<(), RegistryError> {
    if value
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == ".." || has_bad_char(part))
    {
        return Err(invalid(
            "file path",
            value,
            "must be relative, without empty, `.` or `..` components, NUL or `\\`",
        ));
    }
    Ok(())
}

/// A ref name such as `main`, `v1.0` or `refs/pr/1`: non-empty, no NUL.
pub(crate) fn reference(value: &str) -> Result<(), RegistryError> {
    if value.is_empty() || value.contains('\0') {
        return Err(invalid("ref", value, "must be non-empty, without NUL"));
    }
    Ok(())
}

/// A repo's gate: `auto` or `manual`.
pub(crate) fn gate(value: &str) -> Result<(), RegistryError> {
    match value {
        "auto" | "manual" => Ok(()),
        _ => Err(invalid("gate", value, "expected `auto` or `manual`")),
    }
}

fn has_bad_char(part: &str) -> bool {
    part.contains(['\0', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(git_sha("commit", &"a".repeat(40)).is_ok());
        assert!(git_sha("commit", &"A".repeat(40)).is_err());
        assert!(git_sha("commit", &"a".repeat(39)).is_err());
        for good in ["gpt2", "org/name", "org/name.v1"] {
            assert!(repo_name(good).is_ok(), "{good}");
        }
        for bad in ["", "/x", "org/", "a/b/c", "../x", "org/..", "a\0b", "a\\b"] {
            assert!(repo_name(bad).is_err(), "{bad:?}");
        }
        for good in ["config.json", "a/b/c.safetensors", ".gitattributes"] {
            assert!(file_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "a/../../x",
            "a//b",
            "./a",
            "a/",
            "a\0",
            "a\\b",
        ] {
            assert!(file_path(bad).is_err(), "{bad:?}");
        }
        assert!(reference("refs/pr/1").is_ok());
        assert!(reference("").is_err());
        assert!(gate("auto").is_ok());
        assert!(gate("false").is_err());
    }
}
