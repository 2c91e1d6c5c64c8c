//! Gathering what detection reads ([`RepoEvidence`]).
//!
//! At pull time everything comes from upstream before any transfer: the card, tags and gate
//! from the repo info, and the licence files (`LICENSE*`, `LICENCE*`, `USE_POLICY*`,
//! `NOTICE*`, ... — [`is_licence_file`]) fetched into memory, small and first, each checked
//! against the git blob id (or LFS sha256) the tree listed. For commits already held, the
//! card comes from the registry and the licence files from the store. Either way, base
//! models named in the card get the licence the registry resolved for their newest held
//! revision, plus what those inherited in turn.

use larder_licence::{Inherited, RepoEvidence, is_licence_file};
use serde_json::Value;

use super::LicenceError;
use crate::fetch::digest::digest_bytes;
use crate::hub::client::{check_status, read_capped, redact};
use crate::hub::{HubClient, HubError, RepoFile, RepoId, RepoInfo, RepoType, gate_mode, retry};
use crate::registry::{CommitDetail, CommitId, Registry, RegistryError, RepoKind};

/// Licence files larger than this are not read (licence texts are a few tens of KiB).
pub const MAX_LICENCE_FILE: u64 = 1 << 20;

/// Whether detection reads this file of a tree: a licence-like name and a sane size.
pub fn wanted(path: &str, size: u64) -> bool {
    is_licence_file(path) && size <= MAX_LICENCE_FILE
}

/// The card's `base_model`, a string or a list.
pub fn card_base_models(card: Option<&Value>) -> Vec<String> {
    match card.and_then(|card| card.get("base_model")) {
        Some(Value::String(base)) => vec![base.trim().to_owned()],
        Some(Value::Array(bases)) => bases
            .iter()
            .filter_map(|base| base.as_str().map(|base| base.trim().to_owned()))
            .collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|base| !base.is_empty())
    .collect()
}

/// Licences of the card's base models that the registry knows: each base's newest held
/// revision's resolved licence, then the licences that revision inherited. Bases not held are
/// left out (detection lists them as unknown).
pub async fn base_model_licences(
    registry: &Registry,
    card: Option<&Value>,
) -> Result<Vec<(String, Option<String>)>, RegistryError> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for base in card_base_models(card) {
        let history = registry.licence_history(RepoKind::Model, &base).await?;
        let Some(latest) = history
            .iter()
            .rev()
            .find(|entry| entry.licence_key.is_some())
        else {
            continue;
        };
        let key = latest
            .licence_key
            .clone()
            .filter(|key| key.as_str() != "unknown");
        if !out.iter().any(|(known, _)| *known == base) {
            out.push((base.clone(), key));
        }
        let inherited: Vec<Inherited> = latest
            .detection
            .as_ref()
            .and_then(|detection| detection.get("inherited"))
            .and_then(|inherited| serde_json::from_value(inherited.clone()).ok())
            .unwrap_or_default();
        for grand in inherited {
            if !out.iter().any(|(known, _)| *known == grand.base_model) {
                out.push((grand.base_model, grand.licence));
            }
        }
    }
    Ok(out)
}

/// Fetch one small file into memory.
async fn fetch_small(
    client: &HubClient,
    kind: RepoType,
    repo: &RepoId,
    commit: &CommitId,
    file: &RepoFile,
) -> Result<Vec<u8>, HubError> {
    if file.size == 0 {
        return Ok(Vec::new());
    }
    let url = client.resolve_url(kind, repo, commit, &file.path)?;
    retry(&client.retry_policy(), || async {
        let (response, _) = client.get_range(url.clone(), 0, file.size - 1).await?;
        let response = check_status(
            response,
            kind,
            repo.as_str(),
            Some(commit),
            Some(&file.path),
            client,
        )
        .await?;
        // More bytes than the listing promised cannot match its digest: stop reading there.
        let cap = usize::try_from(file.size).unwrap_or(usize::MAX);
        let bytes = read_capped(response, cap, client.stall_timeout())
            .await?
            .ok_or_else(|| HubError::TooLarge {
                url: redact(&url),
                limit: cap,
            })?;
        Ok(bytes)
    })
    .await
}

/// Check fetched bytes against the digest the tree listed.
fn check_digest(repo: &RepoId, file: &RepoFile, bytes: &[u8]) -> Result<(), LicenceError> {
    let digests = digest_bytes(bytes, file.lfs_sha256.is_none());
    let (expected, actual) = match &file.lfs_sha256 {
        Some(sha256) => (sha256.to_string(), digests.sha256.to_string()),
        None => (file.git_oid.clone(), digests.git_oid.unwrap_or_default()),
    };
    if expected.eq_ignore_ascii_case(&actual) {
        Ok(())
    } else {
        Err(LicenceError::Corrupt {
            repo: repo.to_string(),
            path: file.path.clone(),
            expected,
            actual,
        })
    }
}

/// Fetch the tree's licence files into memory (verified), in path order.
pub async fn fetch_licence_files(
    client: &HubClient,
    kind: RepoType,
    repo: &RepoId,
    commit: &CommitId,
    tree: &[RepoFile],
) -> Result<Vec<(String, Vec<u8>)>, LicenceError> {
    let mut files = Vec::new();
    for file in tree.iter().filter(|file| is_licence_file(&file.path)) {
        if file.size > MAX_LICENCE_FILE {
            tracing::warn!(repo = %repo, path = %file.path, size = file.size, "licence file too large to read; skipped");
            continue;
        }
        let bytes = fetch_small(client, kind, repo, commit, file).await?;
        check_digest(repo, file, &bytes)?;
        files.push((file.path.clone(), bytes));
    }
    Ok(files)
}

/// Evidence from the repo info and fetched licence files.
pub fn upstream_evidence(
    repo: &RepoId,
    info: &RepoInfo,
    licence_files: Vec<(String, Vec<u8>)>,
    base_model_licences: Vec<(String, Option<String>)>,
) -> RepoEvidence {
    RepoEvidence {
        repo: repo.to_string(),
        card: info.card_data.clone(),
        tags: info.tags.clone(),
        gated: gate_mode(&info.gated),
        licence_files,
        base_model_licences,
    }
}

/// Evidence for a held commit from the registry and the store (for commits recorded without
/// a detection). Tags are not stored; the Hub computes `license:<id>` from the card, so it
/// is derived the same way.
pub async fn held_evidence(
    registry: &Registry,
    store: &dyn crate::store::BlobStore,
    detail: &CommitDetail,
) -> Result<RepoEvidence, LicenceError> {
    let card = detail.card_json.clone();
    let tags = match card.as_ref().and_then(|card| card.get("license")) {
        Some(Value::String(id)) => vec![format!("license:{id}")],
        _ => Vec::new(),
    };
    let mut licence_files = Vec::new();
    for file in &detail.files {
        if !file.held || !wanted(&file.path, file.size) {
            continue;
        }
        let Some(sha256) = &file.sha256 else { continue };
        let path = store
            .fetch_local(sha256)
            .await
            .map_err(|source| LicenceError::Store {
                path: file.path.clone(),
                source,
            })?;
        let bytes = std::fs::read(&path).map_err(|source| LicenceError::Store {
            path: file.path.clone(),
            source: crate::store::StoreError::io("read licence file", path, source),
        })?;
        licence_files.push((file.path.clone(), bytes));
    }
    let base_model_licences = base_model_licences(registry, card.as_ref()).await?;
    Ok(RepoEvidence {
        repo: detail.name.clone(),
        card,
        tags,
        gated: detail.gated.clone(),
        licence_files,
        base_model_licences,
    })
}
