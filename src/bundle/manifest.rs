//! The bundle manifest: what a bundle carries, in a form that can be checked before anything
//! of it is trusted.
//!
//! A bundle is a directory holding `manifest.json` and `blobs/<sha256>`. The manifest lists the
//! repos and commits it describes (with refs, the complete tree, the card and its licence
//! fields), the blobs it carries, what earlier bundles of the same chain carried (`--since`),
//! derived-artifact provenance, and the sha256 of its own canonical JSON (`digest`).
//!
//! The digest is computed over the manifest serialized with `digest` absent, by these types:
//! the reader parses the file into [`Manifest`] (unknown fields refused), serializes it again
//! the same way and compares. It detects damage and careless edits; it is not a signature.
//!
//! Everything read from a manifest is hostile: [`Manifest::validate`] checks names, revisions,
//! paths, digests and sizes, and that every file's blob is described consistently. A manifest
//! file over 512 MiB is refused by its size before any of it is read; what is accepted names
//! only paths, refs, blobs and repo folders that stay inside the directory they are joined onto
//! (the `fuzz` tests below check this against forged manifests, sealed with a valid digest).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::hub::{RepoId, Revision, is_commit_sha, validate_repo_path};
use crate::registry::{CommitId, LicenceFields, RepoKind, Sha256};

/// The `format` field of every bundle manifest.
pub const FORMAT: &str = "larder-bundle";
/// The manifest format this Larder writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name inside a bundle.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The directory of blobs inside a bundle.
pub const BLOBS_DIR: &str = "blobs";
/// Largest file size accepted (what SQLite's INTEGER holds).
const MAX_SIZE: u64 = i64::MAX as u64;
/// Largest manifest accepted (a tree of a million files is far below this).
const MAX_MANIFEST_BYTES: u64 = 512 << 20;

/// A bundle's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The Larder version that wrote it.
    pub larder_version: String,
    /// When it was written (unix seconds).
    pub created_at: i64,
    /// What earlier bundles of this chain carried, for an incremental (`--since`) bundle.
    pub since: Option<Since>,
    /// The repos and commits described.
    pub repos: Vec<RepoEntry>,
    /// The blobs carried in `blobs/`, by sha256.
    pub blobs: Vec<BlobEntry>,
    /// Provenance of derived artifacts (conversions); empty for now.
    pub derivations: Vec<serde_json::Value>,
    /// `sha256:<hex>` of this manifest's canonical JSON without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// The chain an incremental bundle builds on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Since {
    /// The digest of the manifest given to `--since`.
    pub manifest_digest: String,
    /// Commits that manifest or its own predecessors carried, as `kind:org/name@sha`.
    pub commits: Vec<String>,
    /// Blobs that manifest or its own predecessors carried.
    pub blobs: Vec<Sha256>,
}

/// One repository and the commits of it the bundle describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoEntry {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `org/name`.
    pub name: String,
    /// Where it was pulled from.
    pub upstream: String,
    /// The gate, as last seen.
    pub gated: Option<String>,
    /// Whether the repo was private.
    pub private: bool,
    /// The commits.
    pub commits: Vec<CommitEntry>,
}

/// One commit: its refs, tree, card and licence fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitEntry {
    /// 40-hex commit id.
    pub sha: CommitId,
    /// Refs pointing at it when exported.
    pub refs: Vec<String>,
    /// When the source last pulled it.
    pub fetched_at: i64,
    /// The card data.
    pub card_json: Option<serde_json::Value>,
    /// The card's licence fields (licence records).
    pub licence: LicenceFields,
    /// The complete tree.
    pub files: Vec<FileEntry>,
}

/// One file of a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path in the repo.
    pub path: String,
    /// Content size.
    pub size: u64,
    /// Content sha256 (the blob's name).
    pub sha256: Sha256,
    /// git blob oid (of the LFS pointer for LFS files).
    pub git_oid: String,
    /// Whether it is an LFS file.
    pub lfs: bool,
}

/// A blob carried in `blobs/<sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobEntry {
    /// Content sha256.
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("could not read the manifest {path}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Too large to be a manifest.
    #[error("the manifest {path} is {size} bytes, more than any bundle manifest")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// Not JSON of the manifest's shape.
    #[error("the manifest {path} is not a valid bundle manifest")]
    Json {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// The digest does not match the content.
    #[error(
        "the manifest {path} was altered: its digest is {stated} but its content hashes to {actual}"
    )]
    Digest {
        /// The file.
        path: String,
        /// The digest it states.
        stated: String,
        /// What its content hashes to.
        actual: String,
    },
    /// A value in it is invalid.
    #[error("the manifest is invalid: {0}")]
    Invalid(String),
}

impl Manifest {
    /// An empty manifest of the current format.
    pub fn new(created_at: i64) -> Self {
        Manifest {
            format: FORMAT.to_owned(),
            format_version: FORMAT_VERSION,
            larder_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            since: None,
            repos: Vec::new(),
            blobs: Vec::new(),
            derivations: Vec::new(),
            digest: None,
        }
    }

    /// `sha256:<hex>` of the canonical JSON of this manifest without its digest.
    pub fn compute_digest(&self) -> String {
        let mut body = self.clone();
        body.digest = None;
        // Serializing plain data types into a Vec cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)))
    }

    /// The manifest as written to disk: pretty JSON with its digest set.
    pub fn to_json(&self) -> Vec<u8> {
        let mut sealed = self.clone();
        sealed.digest = Some(self.compute_digest());
        let mut bytes = serde_json::to_vec_pretty(&sealed).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Read `path` (a `manifest.json`, or a bundle directory holding one), check its digest
    /// and every value in it.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let path = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let shown = path.display().to_string();
        let read_error = |source| ManifestError::Read {
            path: shown.clone(),
            source,
        };
        let size = std::fs::metadata(&path).map_err(read_error)?.len();
        if size > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { path: shown, size });
        }
        let bytes = std::fs::read(&path).map_err(read_error)?;
        Manifest::parse(&bytes, &shown)
    }

    /// Parse and check manifest bytes (`shown` names them in errors).
    pub fn parse(bytes: &[u8], shown: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                path: shown.to_owned(),
                source,
            })?;
        if manifest.format != FORMAT || manifest.format_version != FORMAT_VERSION {
            return Err(ManifestError::Invalid(format!(
                "format {:?} version {} is not {FORMAT} version {FORMAT_VERSION}",
                manifest.format, manifest.format_version
            )));
        }
        let actual = manifest.compute_digest();
        match &manifest.digest {
            Some(stated) if *stated == actual => {}
            stated => {
                return Err(ManifestError::Digest {
                    path: shown.to_owned(),
                    stated: stated.clone().unwrap_or_else(|| "missing".to_owned()),
                    actual,
                });
            }
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Check every value: names, revisions, paths, digests, sizes, and consistency.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |what: String| Err(ManifestError::Invalid(what));
        let mut carried: BTreeMap<&str, u64> = BTreeMap::new();
        for blob in &self.blobs {
            if carried.insert(&blob.sha256, blob.size).is_some() {
                return invalid(format!("blob {} is listed twice", blob.sha256));
            }
        }
        let mut repos = BTreeSet::new();
        let mut sizes: BTreeMap<&str, u64> = carried.clone();
        for repo in &self.repos {
            if RepoId::parse(&repo.name).is_err() {
                return invalid(format!("repo name {:?}", repo.name));
            }
            if !repos.insert((repo.kind, repo.name.as_str())) {
                return invalid(format!("repo {} is listed twice", repo.name));
            }
            if let Some(gate) = &repo.gated
                && !matches!(gate.as_str(), "auto" | "manual")
            {
                return invalid(format!("gate {gate:?} of {}", repo.name));
            }
            let mut commits = BTreeSet::new();
            for commit in &repo.commits {
                let at = format!("{}@{}", repo.name, commit.sha);
                if !commits.insert(commit.sha.as_str()) {
                    return invalid(format!("commit {at} is listed twice"));
                }
                for reference in &commit.refs {
                    if Revision::parse(reference).is_err() {
                        return invalid(format!("ref {reference:?} of {at}"));
                    }
                }
                let mut paths = BTreeSet::new();
                for file in &commit.files {
                    if let Err(error) = validate_repo_path(&file.path) {
                        return invalid(format!("{at}: {error}"));
                    }
                    if !paths.insert(file.path.as_str()) {
                        return invalid(format!("{at}: {} is listed twice", file.path));
                    }
                    if file.size > MAX_SIZE {
                        return invalid(format!("{at}: {} has size {}", file.path, file.size));
                    }
                    if !is_commit_sha(&file.git_oid) {
                        return invalid(format!("{at}: {} has a malformed digest", file.path));
                    }
                    if file.lfs
                        && crate::bundle::lfs_pointer_oid(&file.sha256, file.size) != file.git_oid
                    {
                        return invalid(format!(
                            "{at}: {} has a git oid that is not its LFS pointer's",
                            file.path
                        ));
                    }
                    match sizes.get(file.sha256.as_str()) {
                        Some(size) if *size != file.size => {
                            return invalid(format!(
                                "{at}: {} has size {} but its blob {} is {size} bytes",
                                file.path, file.size, file.sha256
                            ));
                        }
                        Some(_) => {}
                        None => {
                            sizes.insert(&file.sha256, file.size);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `kind:org/name@sha` of every commit described here.
    pub fn commit_keys(&self) -> BTreeSet<String> {
        self.repos
            .iter()
            .flat_map(|repo| {
                repo.commits
                    .iter()
                    .map(move |c| commit_key(repo.kind, &repo.name, &c.sha))
            })
            .collect()
    }
}

/// The key of a commit in [`Since::commits`].
pub fn commit_key(kind: RepoKind, name: &str, sha: &CommitId) -> String {
    format!("{kind}:{name}@{sha}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut manifest = Manifest::new(1);
        let sha256 = Sha256::parse(&"ab".repeat(32)).unwrap();
        manifest.blobs.push(BlobEntry { sha256, size: 3 });
        manifest.repos.push(RepoEntry {
            kind: RepoKind::Model,
            name: "org/x".to_owned(),
            upstream: "https://huggingface.co".to_owned(),
            gated: None,
            private: false,
            commits: vec![CommitEntry {
                sha: CommitId::parse(&"c".repeat(40)).unwrap(),
                refs: vec!["main".to_owned()],
                fetched_at: 5,
                card_json: Some(serde_json::json!({"license": "mit", "x": 1.5})),
                licence: LicenceFields::default(),
                files: vec![FileEntry {
                    path: "a/b.txt".to_owned(),
                    size: 3,
                    sha256,
                    git_oid: "d".repeat(40),
                    lfs: false,
                }],
            }],
        });
        manifest
    }

    #[test]
    fn round_trips_and_detects_tampering() {
        let bytes = sample().to_json();
        let parsed = Manifest::parse(&bytes, "m").unwrap();
        assert_eq!(parsed.repos, sample().repos);
        let text = String::from_utf8(bytes).unwrap();
        let tampered = text.replace("\"size\": 3", "\"size\": 4");
        assert!(matches!(
            Manifest::parse(tampered.as_bytes(), "m"),
            Err(ManifestError::Digest { .. })
        ));
        let unknown = text.replacen('{', "{\"extra\": 1,", 1);
        assert!(matches!(
            Manifest::parse(unknown.as_bytes(), "m"),
            Err(ManifestError::Json { .. })
        ));
    }

    /// Found by `fuzz::bundle_forged_manifests`: serde_json's default float parsing can read a
    /// float one bit off what was written, so a card holding it failed its own digest.
    #[test]
    fn card_floats_survive_the_round_trip() {
        let mut manifest = sample();
        let value = -4.5027232743620123e139;
        manifest.repos[0].commits[0].card_json = Some(serde_json::json!({"f": value}));
        let parsed = Manifest::parse(&manifest.to_json(), "m").unwrap();
        let card = parsed.repos[0].commits[0].card_json.as_ref().unwrap();
        assert_eq!(card["f"].as_f64(), Some(value));
    }

    #[test]
    fn refuses_hostile_values() {
        let mut bad = sample();
        bad.repos[0].commits[0].files[0].path = "../../etc/passwd".to_owned();
        assert!(Manifest::parse(&bad.to_json(), "m").is_err());
        let mut bad = sample();
        bad.repos[0].name = "../x".to_owned();
        assert!(Manifest::parse(&bad.to_json(), "m").is_err());
        let mut bad = sample();
        bad.repos[0].commits[0].files[0].size = 9;
        assert!(
            Manifest::parse(&bad.to_json(), "m").is_err(),
            "size disagrees with blob"
        );
        let mut bad = sample();
        bad.repos[0].commits[0].files[0].lfs = true;
        assert!(
            Manifest::parse(&bad.to_json(), "m").is_err(),
            "lfs oid not the pointer's"
        );
        assert!(Manifest::parse(b"[1,2]", "m").is_err());
    }
}

/// Property tests: forged and damaged manifests (see `crate::fuzzing`).
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::bundle::lfs_pointer_oid;
    use crate::fuzzing::{any_text, hostile_text, stays_inside};
    use proptest::prelude::*;

    /// The blobs a generated manifest draws from: sha256 and size.
    const POOL: usize = 4;

    fn pool_sha(i: usize) -> Sha256 {
        Sha256::from_bytes(&sha2::Sha256::digest([i as u8]).into())
    }

    fn pool_size(i: usize) -> u64 {
        [0, 3, 1 << 20, MAX_SIZE][i % POOL]
    }

    /// Mostly valid text, sometimes with a hostile piece spliced in.
    fn mostly(valid: &'static str, hostile: usize) -> BoxedStrategy<String> {
        prop_oneof![
            30 => valid.boxed(),
            2 => (valid, hostile_text(hostile), valid).prop_map(|(a, h, b)| format!("{a}{h}{b}")).boxed(),
            1 => any_text(hostile).boxed(),
        ]
        .boxed()
    }

    fn file_entry() -> impl Strategy<Value = FileEntry> {
        (
            mostly("[a-c]{1,3}(/[a-c]{1,3}){0,2}", 4),
            0..POOL,
            prop_oneof![30 => Just(None), 1 => any::<u64>().prop_map(Some)],
            // A malformed digest cannot be held in a manifest at all (`Sha256` refuses it).
            prop_oneof![30 => Just(None), 1 => "[0-9a-f]{64}".prop_map(|s| Sha256::parse(&s).ok())],
            any::<bool>(),
            prop_oneof![30 => Just(None), 1 => "[0-9a-f]{40}".prop_map(Some)],
        )
            .prop_map(|(path, blob, size, sha, lfs, oid)| {
                let size = size.unwrap_or(pool_size(blob));
                let sha256 = sha.unwrap_or_else(|| pool_sha(blob));
                let git_oid = oid.unwrap_or_else(|| {
                    if lfs {
                        lfs_pointer_oid(&sha256, size)
                    } else {
                        hex::encode(sha2::Sha256::digest(path.as_bytes()))[..40].to_owned()
                    }
                });
                FileEntry {
                    path,
                    size,
                    sha256,
                    git_oid,
                    lfs,
                }
            })
    }

    fn card() -> impl Strategy<Value = Option<serde_json::Value>> {
        proptest::option::of(
            (any_text(3), any::<f64>(), any::<i64>(), any::<u64>()).prop_map(|(s, f, i, u)| {
                serde_json::json!({"license": s, "f": f, "i": i, "u": u, "list": [f, s]})
            }),
        )
    }

    fn commit_entry() -> impl Strategy<Value = CommitEntry> {
        (
            "[0-9a-f]{40}".prop_map(|s| CommitId::parse(&s).unwrap()),
            proptest::collection::vec(mostly("[a-z0-9]{1,4}(/[a-z0-9]{1,4}){0,2}", 3), 0..3),
            any::<i64>(),
            card(),
            proptest::collection::vec(file_entry(), 0..5),
        )
            .prop_map(|(sha, refs, fetched_at, card_json, files)| CommitEntry {
                sha,
                refs,
                fetched_at,
                card_json,
                licence: LicenceFields::default(),
                files,
            })
    }

    fn repo_entry() -> impl Strategy<Value = RepoEntry> {
        (
            any::<bool>(),
            (mostly("[a-z0-9]{1,4}", 3), mostly("[a-z0-9]{1,4}", 3))
                .prop_map(|(org, name)| format!("{org}/{name}")),
            prop_oneof![
                10 => Just(None),
                2 => Just(Some("auto".to_owned())),
                2 => Just(Some("manual".to_owned())),
                1 => any_text(2).prop_map(Some),
            ],
            proptest::collection::vec(commit_entry(), 0..3),
        )
            .prop_map(|(dataset, name, gated, commits)| RepoEntry {
                kind: if dataset {
                    RepoKind::Dataset
                } else {
                    RepoKind::Model
                },
                name,
                upstream: "https://huggingface.co".to_owned(),
                gated,
                private: false,
                commits,
            })
    }

    fn manifest() -> impl Strategy<Value = Manifest> {
        (
            proptest::collection::vec(repo_entry(), 0..3),
            proptest::collection::vec(
                (
                    0..POOL,
                    prop_oneof![30 => Just(None), 1 => any::<u64>().prop_map(Some)],
                ),
                0..5,
            ),
            proptest::option::of(proptest::collection::vec(
                "[0-9a-f]{64}".prop_map(|s| Sha256::parse(&s).unwrap()),
                0..3,
            )),
            any::<i64>(),
            proptest::bool::weighted(0.05),
        )
            .prop_map(|(repos, blobs, since, created_at, twice)| {
                let mut manifest = Manifest::new(created_at);
                manifest.repos = repos;
                // A blob listed twice is refused; let that be rare rather than the rule.
                let mut seen = BTreeSet::new();
                manifest.blobs = blobs
                    .into_iter()
                    .filter(|(i, _)| seen.insert(*i))
                    .map(|(i, size)| BlobEntry {
                        sha256: pool_sha(i),
                        size: size.unwrap_or(pool_size(i)),
                    })
                    .collect();
                if twice && let Some(first) = manifest.blobs.first().cloned() {
                    manifest.blobs.push(first);
                }
                manifest.since = since.map(|blobs| Since {
                    manifest_digest: "sha256:0".to_owned(),
                    commits: vec!["model:a/b@0".to_owned()],
                    blobs,
                });
                manifest
            })
    }

    /// What an import and an hf-cache export make of an accepted manifest stays inside their
    /// directories.
    fn check_accepted(manifest: &Manifest) -> Result<(), TestCaseError> {
        for blob in &manifest.blobs {
            prop_assert!(stays_inside(&blob.sha256));
        }
        for repo in &manifest.repos {
            // A valid repo id's cache folder stays inside (`hub::types::fuzz` checks that;
            // importing `hf_cache` here would close an import circle).
            prop_assert!(RepoId::parse(&repo.name).is_ok(), "{:?}", repo.name);
            for commit in &repo.commits {
                for reference in &commit.refs {
                    prop_assert!(stays_inside(reference), "ref {reference:?} escapes");
                }
                for file in &commit.files {
                    prop_assert!(stays_inside(&file.path), "{:?} escapes", file.path);
                    prop_assert!(file.size <= MAX_SIZE);
                    prop_assert!(stays_inside(&file.sha256));
                }
            }
        }
        Ok(())
    }

    proptest! {
        /// A forged manifest (its digest sealed over whatever it holds) is either refused or
        /// names only files, refs, blobs and repo folders that stay inside the destination.
        /// A sound one survives its own round trip.
        #[test]
        fn bundle_forged_manifests(manifest in manifest()) {
            let bytes = manifest.to_json();
            let parsed = Manifest::parse(&bytes, "m");
            let sound = manifest.validate().is_ok();
            match parsed {
                Ok(parsed) => {
                    check_accepted(&parsed)?;
                    prop_assert!(sound);
                    prop_assert_eq!(Manifest::parse(&parsed.to_json(), "m").ok(), Some(parsed));
                }
                Err(ManifestError::Invalid(_)) => prop_assert!(!sound),
                Err(other) => prop_assert!(false, "a sealed manifest refused as {other}"),
            }
        }

        /// Damage to a sealed manifest, or bytes that never were one: an error, never a panic.
        #[test]
        fn bundle_damaged_manifests(
            manifest in manifest(),
            at in any::<proptest::sample::Index>(),
            byte in any::<u8>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut bytes = manifest.to_json();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(parsed) = Manifest::parse(&bytes, "m") {
                check_accepted(&parsed)?;
            }
            if let Ok(parsed) = Manifest::parse(&garbage, "m") {
                check_accepted(&parsed)?;
            }
        }
    }
}
