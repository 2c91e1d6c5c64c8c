//! Typed digests: a blob's content [`Sha256`] and a git [`CommitId`].
//!
//! Both are lowercase hex strings on the wire, in the database, in paths and in JSON, and both
//! come from hostile places (upstream listings, HTTP headers, URLs, bundles, the command line).
//! A value of either type has been checked once, where it entered, so code that holds one never
//! re-checks it and can never mix a commit up with a content digest. They are `Copy`: the hex
//! digits are kept inline, so [`as_str`](Sha256::as_str) borrows them without allocating.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that is not the digest it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {what}: expected {digits} lowercase hex digits")]
pub struct DigestError {
    /// What was expected (`sha256`, `commit id`).
    pub what: &'static str,
    /// How many hex digits that takes.
    pub digits: usize,
    /// The refused value, cut to 80 characters.
    pub value: String,
}

/// Lowercase hex digits of `bytes`, written into `out` (twice as long).
fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Whether `text` is exactly `digits` lowercase hex digits: the one spelling of every digest and
/// hash Larder keeps or compares (sha256, commit and blob ids, Xet hashes).
pub fn is_lower_hex(text: &str, digits: usize) -> bool {
    text.len() == digits
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit - b'a' + 10,
    }
}

macro_rules! hex_digest {
    ($(#[$doc:meta])* $name:ident, bytes = $bytes:literal, what = $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name([u8; $bytes * 2]);

        impl $name {
            /// How many hex digits the text form has.
            pub const HEX_LEN: usize = $bytes * 2;

            /// Check `text` and keep it: exactly the right number of lowercase hex digits.
            pub fn parse(text: &str) -> Result<Self, DigestError> {
                if !is_lower_hex(text, Self::HEX_LEN) {
                    return Err(DigestError {
                        what: $what,
                        digits: Self::HEX_LEN,
                        value: text.chars().take(80).collect(),
                    });
                }
                let mut digits = [0u8; $bytes * 2];
                digits.copy_from_slice(text.as_bytes());
                Ok($name(digits))
            }

            /// The digest of raw bytes, as a hasher returns it.
            pub fn from_bytes(bytes: &[u8; $bytes]) -> Self {
                let mut digits = [0u8; $bytes * 2];
                encode_hex(bytes, &mut digits);
                $name(digits)
            }

            /// The raw bytes.
            pub fn to_bytes(&self) -> [u8; $bytes] {
                let mut bytes = [0u8; $bytes];
                for (byte, pair) in bytes.iter_mut().zip(self.0.chunks_exact(2)) {
                    *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
                }
                bytes
            }

            /// The lowercase hex form.
            pub fn as_str(&self) -> &str {
                // Only ASCII hex digits are ever stored (`parse`, `from_bytes`).
                std::str::from_utf8(&self.0).expect("a digest holds ASCII hex digits")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.as_str())
            }
        }

        // Hashes as its text does, so that `Borrow<str>` lookups in maps and sets agree.
        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.as_str().hash(state);
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        // A digest is its text wherever text is wanted (paths, URLs, headers, messages).
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl FromStr for $name {
            type Err = DigestError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = DigestError;

            fn try_from(text: &str) -> Result<Self, Self::Error> {
                Self::parse(text)
            }
        }

        impl AsRef<std::path::Path> for $name {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(self.as_str())
            }
        }

        impl PartialEq<&$name> for $name {
            fn eq(&self, other: &&$name) -> bool {
                self == *other
            }
        }

        impl From<&$name> for String {
            fn from(digest: &$name) -> String {
                digest.as_str().to_owned()
            }
        }

        impl From<$name> for String {
            fn from(digest: $name) -> String {
                digest.as_str().to_owned()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                Self::parse(value.as_str()?).map_err(|err| FromSqlError::Other(Box::new(err)))
            }
        }
    };
}

hex_digest!(
    /// A content digest: the SHA-256 of a blob's bytes. The store names blobs by it, LFS
    /// pointers and `X-Linked-Etag` carry it.
    Sha256,
    bytes = 32,
    what = "sha256"
);

hex_digest!(
    /// A git commit id (SHA-1, as the Hub's repos use): what a revision resolves to.
    CommitId,
    bytes = 20,
    what = "commit id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_only_lowercase_hex_of_the_right_length() {
        assert_eq!(Sha256::parse(EMPTY).unwrap().as_str(), EMPTY);
        for bad in [
            "",
            &EMPTY[..63],
            &EMPTY.to_uppercase(),
            &format!("{EMPTY}0"),
            &format!("{}g", &EMPTY[..63]),
            "../../etc/passwd",
        ] {
            let err = Sha256::parse(bad).unwrap_err();
            assert_eq!(err.what, "sha256");
            assert!(!is_lower_hex(bad, 64));
        }
        assert!(is_lower_hex(EMPTY, 64) && !is_lower_hex(EMPTY, 40));
        assert!(CommitId::parse(&"a".repeat(40)).is_ok());
        assert!(CommitId::parse(EMPTY).is_err());
    }

    #[test]
    fn bytes_round_trip() {
        let digest = Sha256::parse(EMPTY).unwrap();
        assert_eq!(Sha256::from_bytes(&digest.to_bytes()), digest);
        assert_eq!(digest.to_bytes()[0], 0xe3);
    }

    #[test]
    fn looks_up_by_text_and_serializes_as_text() {
        let digest = Sha256::parse(EMPTY).unwrap();
        let map = HashMap::from([(digest, 1)]);
        assert_eq!(map.get(EMPTY), Some(&1));
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), digest);
        assert!(serde_json::from_str::<Sha256>("\"zz\"").is_err());
    }

    #[test]
    fn long_refused_values_are_cut() {
        let err = CommitId::parse(&"x".repeat(10_000)).unwrap_err();
        assert_eq!(err.value.len(), 80);
        assert!(err.to_string().contains("40 lowercase hex digits"));
    }
}
