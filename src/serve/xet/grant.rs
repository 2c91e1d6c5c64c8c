//! The mirror's CAS credentials: read tokens scoped to one commit of one repo, and signed xorb
//! URLs. Both are short-lived and carry their own proof (a keyed BLAKE3 MAC under a key the
//! mirror draws at start), so checking them needs no lookup and no state.
//!
//! - A **read token** is what `xet-read-token` hands out after the same checks as a file
//!   download (access token, gate checked upstream, licence policy). Xet clients send it as
//!   `Authorization: Bearer` on reconstruction requests; it names the repo and commit it grants,
//!   so a reconstruction is answered only for a file of that commit.
//! - A **xorb URL** is fetched without `Authorization` (clients treat it like a presigned object
//!   store URL), so it is signed: the blob, the xorb's first chunk in it, the xorb hash and the
//!   expiry. A forged or expired one gets `403`, on which clients ask for a fresh
//!   reconstruction.
//!
//! Without a configured key a restart draws a new one: outstanding tokens and URLs stop working
//! and clients refresh them through the token route, as they do when a token expires. Several
//! nodes behind one address share a key file (`[serve] xet_key_file`), so a token one node
//! handed out is good at every node ([`XetKey::from_secret`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::registry::{CommitId, RepoKind, Sha256};

/// How long a read token is valid.
pub const TOKEN_TTL_SECS: u64 = 600;
/// How long a xorb URL is valid.
pub const XORB_URL_TTL_SECS: u64 = 600;

/// What a read token grants: reading the files of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadGrant {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub repo: String,
    /// The commit (40 hex).
    pub commit: CommitId,
    /// Unix seconds after which it is refused.
    pub expires: u64,
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not a token or URL this mirror made (or made before a restart).
    #[error("the credential was not issued by this mirror (or the mirror restarted since)")]
    Forged,
    /// Past its expiry.
    #[error("the credential expired")]
    Expired,
}

/// Signs and checks the mirror's credentials.
pub struct Signer {
    key: [u8; 32],
}

/// The key that signs tokens and xorb URLs. Its `Debug` never shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct XetKey([u8; 32]);

/// Shortest secret a key file may hold.
pub const MIN_SECRET_BYTES: usize = 32;

impl XetKey {
    /// The key of a shared secret (a key file's bytes, surrounding whitespace ignored, so that
    /// `openssl rand -hex 32 > key` works); `None` when it is shorter than
    /// [`MIN_SECRET_BYTES`]. Derived, so the file's bytes are never used as the key itself.
    pub fn from_secret(secret: &[u8]) -> Option<XetKey> {
        let secret = secret.trim_ascii();
        (secret.len() >= MIN_SECRET_BYTES)
            .then(|| XetKey(blake3::derive_key("larder 2026 xet signing key v1", secret)))
    }
}

impl std::fmt::Debug for XetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XetKey(..)")
    }
}

impl From<XetKey> for Signer {
    fn from(key: XetKey) -> Signer {
        Signer::new(key.0)
    }
}

impl Default for Signer {
    fn default() -> Self {
        Signer::new(rand::random())
    }
}

impl Signer {
    /// A signer with this key.
    pub fn new(key: [u8; 32]) -> Self {
        Signer { key }
    }

    fn mac(&self, message: &str) -> String {
        URL_SAFE_NO_PAD.encode(blake3::keyed_hash(&self.key, message.as_bytes()).as_bytes())
    }

    fn check_mac(&self, message: &str, mac: &str) -> Result<(), GrantError> {
        let Ok(given) = URL_SAFE_NO_PAD.decode(mac) else {
            return Err(GrantError::Forged);
        };
        let Ok(given) = <[u8; 32]>::try_from(given.as_slice()) else {
            return Err(GrantError::Forged);
        };
        // blake3::Hash compares in constant time.
        if blake3::keyed_hash(&self.key, message.as_bytes()) == blake3::Hash::from(given) {
            Ok(())
        } else {
            Err(GrantError::Forged)
        }
    }

    /// A read token for `grant`.
    pub fn token(&self, grant: &ReadGrant) -> String {
        let payload = format!(
            "r1\n{}\n{}\n{}\n{}",
            grant.kind.as_str(),
            grant.repo,
            grant.commit,
            grant.expires
        );
        let encoded = URL_SAFE_NO_PAD.encode(payload.as_bytes());
        let mac = self.mac(&payload);
        format!("{encoded}.{mac}")
    }

    /// The grant a read token carries, if it is genuine and not expired at `now`.
    pub fn check_token(&self, token: &str, now: u64) -> Result<ReadGrant, GrantError> {
        let (encoded, mac) = token.split_once('.').ok_or(GrantError::Forged)?;
        let payload = URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(GrantError::Forged)?;
        self.check_mac(&payload, mac)?;
        let fields: Vec<&str> = payload.split('\n').collect();
        let [version, kind, repo, commit, expires] = fields.as_slice() else {
            return Err(GrantError::Forged);
        };
        if *version != "r1" {
            return Err(GrantError::Forged);
        }
        let kind: RepoKind = kind.parse().map_err(|_| GrantError::Forged)?;
        let expires: u64 = expires.parse().map_err(|_| GrantError::Forged)?;
        if expires < now {
            return Err(GrantError::Expired);
        }
        Ok(ReadGrant {
            kind,
            repo: (*repo).to_owned(),
            commit: CommitId::parse(commit).map_err(|_| GrantError::Forged)?,
            expires,
        })
    }

    fn xorb_message(xorb: &str, blob: &Sha256, first_chunk: u32, expires: u64) -> String {
        format!("x1\n{xorb}\n{blob}\n{first_chunk}\n{expires}")
    }

    /// The signature query of a xorb URL: `exp=...&sig=...`.
    pub fn xorb_query(&self, xorb: &str, blob: &Sha256, first_chunk: u32, expires: u64) -> String {
        let mac = self.mac(&Self::xorb_message(xorb, blob, first_chunk, expires));
        format!("exp={expires}&sig={mac}")
    }

    /// Check a xorb URL's signature query at `now`.
    pub fn check_xorb(
        &self,
        xorb: &str,
        blob: &Sha256,
        first_chunk: u32,
        query: &str,
        now: u64,
    ) -> Result<(), GrantError> {
        let mut expires = None;
        let mut sig = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("exp", v)) => expires = v.parse::<u64>().ok(),
                Some(("sig", v)) => sig = Some(v),
                _ => {}
            }
        }
        let (Some(expires), Some(sig)) = (expires, sig) else {
            return Err(GrantError::Forged);
        };
        self.check_mac(&Self::xorb_message(xorb, blob, first_chunk, expires), sig)?;
        if expires < now {
            return Err(GrantError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires: u64) -> ReadGrant {
        ReadGrant {
            kind: RepoKind::Model,
            repo: "org/name".into(),
            commit: CommitId::parse(&"a".repeat(40)).unwrap(),
            expires,
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_forgeries() {
        let signer = Signer::new([7; 32]);
        let token = signer.token(&grant(100));
        assert_eq!(signer.check_token(&token, 50), Ok(grant(100)));
        assert_eq!(signer.check_token(&token, 101), Err(GrantError::Expired));
        // Another mirror (or this one after a restart) did not make it.
        assert_eq!(
            Signer::new([8; 32]).check_token(&token, 50),
            Err(GrantError::Forged)
        );
        // A changed payload with the old MAC.
        let (_, mac) = token.split_once('.').unwrap();
        let other =
            URL_SAFE_NO_PAD.encode(format!("r1\nmodel\norg/other\n{}\n100", "a".repeat(40)));
        assert_eq!(
            signer.check_token(&format!("{other}.{mac}"), 50),
            Err(GrantError::Forged)
        );
        for junk in ["", ".", "abc", "abc.def", "!!!.???"] {
            assert_eq!(signer.check_token(junk, 50), Err(GrantError::Forged));
        }
    }

    #[test]
    fn xorb_urls_are_bound_to_their_xorb() {
        let signer = Signer::new([1; 32]);
        let b = &Sha256::parse(&"b".repeat(64)).unwrap();
        let query = signer.xorb_query("x", b, 3, 100);
        assert_eq!(signer.check_xorb("x", b, 3, &query, 99), Ok(()));
        assert_eq!(
            signer.check_xorb("x", b, 3, &query, 101),
            Err(GrantError::Expired)
        );
        assert_eq!(
            signer.check_xorb("x", b, 4, &query, 99),
            Err(GrantError::Forged)
        );
        assert_eq!(
            signer.check_xorb("y", b, 3, &query, 99),
            Err(GrantError::Forged)
        );
        let later = query.replace("exp=100", "exp=1000");
        assert_eq!(
            signer.check_xorb("x", b, 3, &later, 99),
            Err(GrantError::Forged)
        );
    }

    proptest::proptest! {
        /// No string is accepted as a token or a xorb signature unless this signer made it.
        #[test]
        fn arbitrary_credentials_are_refused(token in "\\PC{0,120}", query in "\\PC{0,80}") {
            let signer = Signer::new([3; 32]);
            let b = &Sha256::parse(&"b".repeat(64)).unwrap();
            proptest::prop_assert!(signer.check_token(&token, 0).is_err());
            proptest::prop_assert!(signer.check_xorb("x", b, 0, &query, 0).is_err());
        }
    }
}
