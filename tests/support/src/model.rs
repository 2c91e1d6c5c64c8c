//! The data the stand-in serves: repos, commits, refs, files and access rules.
//!
//! A [`Hub`] is a cheap, cloneable handle on shared state, so tests can keep
//! changing it (new commits, moved refs, flags) after the server started.
//! Every commit is a complete tree; [`RepoBuilder::commit`] starts from the
//! tree the target ref currently points at (a new ref starts from `main`,
//! like a PR) and applies the builder's changes.

use crate::hash;
use bytes::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Files at least this large are LFS files unless said otherwise.
pub const LFS_THRESHOLD: u64 = 10 * 1024 * 1024;

/// The kind of a repository, which decides its URL prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepoKind {
    /// `/api/models/…`, `/{repo}/resolve/…`.
    Model,
    /// `/api/datasets/…`, `/datasets/{repo}/resolve/…`.
    Dataset,
    /// `/api/spaces/…`, `/spaces/{repo}/resolve/…`.
    Space,
}

impl RepoKind {
    /// The plural used in API URLs: `models`, `datasets`, `spaces`.
    pub fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
            RepoKind::Space => "spaces",
        }
    }

    /// Parses `model`/`models`/`dataset`/… (as used by the binary's `--repo`).
    pub fn parse(text: &str) -> Option<RepoKind> {
        match text {
            "model" | "models" => Some(RepoKind::Model),
            "dataset" | "datasets" => Some(RepoKind::Dataset),
            "space" | "spaces" => Some(RepoKind::Space),
            _ => None,
        }
    }
}

/// Where a file's bytes live.
#[derive(Debug, Clone)]
pub enum Content {
    /// Held in memory.
    Memory(Bytes),
    /// Streamed from disk on every request; never loaded whole.
    Disk(PathBuf),
}

/// LFS metadata of a file, as in `lfs{sha256,size,pointerSize}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsInfo {
    /// SHA-256 of the content (`lfs.oid`, `X-Linked-Etag`).
    pub sha256: String,
    /// Content size in bytes.
    pub size: u64,
    /// Length of the LFS pointer text.
    pub pointer_size: u64,
    /// The Xet file hash, when the file is stored in Xet (`xetHash`, `X-Xet-Hash`).
    pub xet_hash: Option<String>,
}

/// One file of a commit, with every hash the Hub reports for it.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Full path from the repo root.
    pub path: String,
    /// The bytes.
    pub content: Content,
    /// Content size in bytes.
    pub size: u64,
    /// Tree `oid`/`blobId`: git blob oid, or the pointer's oid for LFS files.
    pub oid: String,
    /// Present for LFS files.
    pub lfs: Option<LfsInfo>,
}

impl FileEntry {
    /// The etag clients store the blob under: SHA-256 for LFS, git oid otherwise.
    pub fn etag(&self) -> &str {
        self.lfs.as_ref().map_or(&self.oid, |lfs| &lfs.sha256)
    }

    /// The SHA-256 of the content, if it is an LFS file.
    pub fn sha256(&self) -> Option<&str> {
        self.lfs.as_ref().map(|lfs| lfs.sha256.as_str())
    }
}

/// A file whose hashes have been computed but that is not in any commit yet.
///
/// Hashing big files takes a while; the binary prepares them in parallel.
#[derive(Debug, Clone)]
pub struct PreparedFile(FileEntry);

fn lfs_info(sha256: String, size: u64) -> (String, LfsInfo) {
    let oid = hash::lfs_pointer_oid(&sha256, size);
    (
        oid,
        LfsInfo {
            sha256,
            size,
            pointer_size: hash::pointer_size(size),
            xet_hash: None,
        },
    )
}

impl PreparedFile {
    /// In-memory content; `lfs: None` means LFS when ≥ [`LFS_THRESHOLD`].
    pub fn memory(path: &str, data: impl Into<Bytes>, lfs: Option<bool>) -> PreparedFile {
        let data: Bytes = data.into();
        let size = data.len() as u64;
        let (oid, lfs) = if lfs.unwrap_or(size >= LFS_THRESHOLD) {
            let (oid, info) = lfs_info(hash::sha256_hex(&data), size);
            (oid, Some(info))
        } else {
            (hash::git_hash(&data), None)
        };
        PreparedFile(FileEntry {
            path: clean_path(path),
            content: Content::Memory(data),
            size,
            oid,
            lfs,
        })
    }

    /// Content on disk, hashed once here with streaming reads; `lfs: None`
    /// means LFS when ≥ [`LFS_THRESHOLD`].
    pub fn disk(
        path: &str,
        disk: impl AsRef<Path>,
        lfs: Option<bool>,
    ) -> std::io::Result<PreparedFile> {
        let disk = disk.as_ref();
        let size = std::fs::metadata(disk)?.len();
        let is_lfs = lfs.unwrap_or(size >= LFS_THRESHOLD);
        let digest = hash::hash_file(disk, !is_lfs, is_lfs)?;
        let (oid, lfs) = match digest.sha256 {
            Some(sha256) => {
                let (oid, info) = lfs_info(sha256, digest.size);
                (oid, Some(info))
            }
            None => (digest.git_oid.unwrap_or_default(), None),
        };
        Ok(PreparedFile(FileEntry {
            path: clean_path(path),
            content: Content::Disk(disk.to_path_buf()),
            size: digest.size,
            oid,
            lfs,
        }))
    }

    /// The computed entry.
    pub fn entry(&self) -> &FileEntry {
        &self.0
    }

    /// The same LFS file, marked as stored in Xet under `xet_hash` (see
    /// [`crate::XetCas::upload_file`]); a file that is not LFS is returned unchanged.
    pub fn with_xet_hash(mut self, xet_hash: &str) -> PreparedFile {
        if let Some(lfs) = self.0.lfs.as_mut() {
            lfs.xet_hash = Some(xet_hash.to_owned());
        }
        self
    }
}

fn clean_path(path: &str) -> String {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// One commit: a complete tree plus the git tree oids of its directories.
#[derive(Debug)]
pub struct Commit {
    /// 40-hex commit sha.
    pub sha: String,
    /// The previous commit of the ref this one was made on.
    pub parent: Option<String>,
    /// Commit title (used for `lastCommit` in expanded tree entries).
    pub title: String,
    /// Unix seconds; `lastModified` of the repo at this commit.
    pub timestamp: i64,
    /// Files by full path.
    pub files: BTreeMap<String, Arc<FileEntry>>,
    /// Directory path (`""` = root) → git tree oid.
    pub dirs: BTreeMap<String, String>,
}

/// Repo-level settings and history.
#[derive(Debug)]
pub(crate) struct Repo {
    pub(crate) kind: RepoKind,
    pub(crate) id: String,
    pub(crate) object_id: String,
    pub(crate) created_at: i64,
    pub(crate) commits: HashMap<String, Arc<Commit>>,
    pub(crate) refs: BTreeMap<String, String>,
    pub(crate) gated: Option<String>,
    pub(crate) private: bool,
    pub(crate) disabled: bool,
    pub(crate) card: Option<Value>,
    pub(crate) tags: Vec<String>,
    /// More top-level fields of the repo info, as the Hub sends them (`pipeline_tag`,
    /// `config`, `safetensors`, ...; see [`crate::fixtures`]).
    pub(crate) info: serde_json::Map<String, Value>,
    /// `securityFileStatus` of tree entries asked with `expand=true`, by path.
    pub(crate) security: HashMap<String, Value>,
}

impl Repo {
    /// Resolves a revision: a ref name (also `refs/heads/x`, `refs/tags/x`) or a full commit sha.
    pub(crate) fn resolve(&self, revision: &str) -> Option<Arc<Commit>> {
        if revision == "HEAD" {
            // The Hub's name for the default branch.
            return self.default_commit();
        }
        let short = revision
            .strip_prefix("refs/heads/")
            .or_else(|| revision.strip_prefix("refs/tags/"))
            .unwrap_or(revision);
        let sha = self.refs.get(revision).or_else(|| self.refs.get(short));
        match sha {
            Some(sha) => self.commits.get(sha).cloned(),
            None => self.commits.get(&revision.to_ascii_lowercase()).cloned(),
        }
    }

    /// The commit `main` points at, else any ref's commit.
    pub(crate) fn default_commit(&self) -> Option<Arc<Commit>> {
        self.resolve("main").or_else(|| {
            self.refs
                .values()
                .next()
                .and_then(|sha| self.commits.get(sha).cloned())
        })
    }

    /// Splits `segments` into a revision and a path, preferring the longest
    /// existing ref name so that literal-slash revisions like `refs/pr/1` work.
    pub(crate) fn split_revision(&self, segments: &[String]) -> (String, Vec<String>) {
        for take in (2..=segments.len()).rev() {
            let candidate = segments[..take].join("/");
            if self.refs.contains_key(&candidate) {
                return (candidate, segments[take..].to_vec());
            }
        }
        match segments.split_first() {
            Some((first, rest)) => (first.clone(), rest.to_vec()),
            None => (String::new(), Vec::new()),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct HubState {
    pub(crate) repos: HashMap<(RepoKind, String), Repo>,
    /// Repo id → tokens that may read it (gated or private).
    pub(crate) tokens: HashMap<String, HashSet<String>>,
    /// SHA-256 → an LFS entry with that content (any path), for the CDN.
    pub(crate) blobs: HashMap<String, Arc<FileEntry>>,
    /// SHA-256 → every path that content has appeared under.
    pub(crate) blob_paths: HashMap<String, BTreeSet<String>>,
    pub(crate) clock: i64,
    /// Old repo ids → the id the repo lives under now (answered with a relative `307`).
    pub(crate) renames: HashMap<(RepoKind, String), String>,
}

/// Result of checking a request's token against a repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenStatus {
    /// No `Authorization` header.
    Anonymous,
    /// A token the hub knows, but not accepted for this repo.
    NotAccepted,
    /// A token the hub has never heard of.
    Unknown,
    /// Accepted for this repo.
    Accepted,
}

impl HubState {
    pub(crate) fn token_status(&self, repo: &str, token: Option<&str>) -> TokenStatus {
        let Some(token) = token else {
            return TokenStatus::Anonymous;
        };
        if self
            .tokens
            .get(repo)
            .is_some_and(|tokens| tokens.contains(token))
        {
            TokenStatus::Accepted
        } else if self.tokens.values().any(|tokens| tokens.contains(token)) {
            TokenStatus::NotAccepted
        } else {
            TokenStatus::Unknown
        }
    }
}

/// The shared, mutable model of every repo the stand-in serves.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    inner: Arc<RwLock<HubState>>,
}

const START_OF_TIME: i64 = 1_700_000_000;

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        Hub::default()
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, HubState> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HubState> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a change to `id` (created on first commit).
    pub fn repo(&self, kind: RepoKind, id: &str) -> RepoBuilder {
        RepoBuilder {
            hub: self.clone(),
            kind,
            id: id.to_owned(),
            changes: Vec::new(),
            clear: false,
            base: None,
            title: None,
            gated: None,
            private: None,
            disabled: None,
            card: None,
            tags: None,
            info: None,
        }
    }

    /// Lets `token` (e.g. `"hf_xxx"`, without `Bearer`) read gated/private repo `repo`.
    pub fn accept_token(&self, repo: &str, token: &str) {
        self.write()
            .tokens
            .entry(repo.to_owned())
            .or_default()
            .insert(token.to_owned());
    }

    /// Withdraws access granted with [`Hub::accept_token`].
    pub fn revoke_token(&self, repo: &str, token: &str) {
        if let Some(tokens) = self.write().tokens.get_mut(repo) {
            tokens.remove(token);
        }
    }

    fn with_repo<T>(&self, kind: RepoKind, id: &str, change: impl FnOnce(&mut Repo) -> T) -> T {
        let mut state = self.write();
        let repo = state
            .repos
            .get_mut(&(kind, id.to_owned()))
            .unwrap_or_else(|| panic!("hub stand-in: no {} repo {id}", kind.plural()));
        change(repo)
    }

    /// Points `reference` (a branch, tag, `refs/pr/N`, …) at `revision` (a sha or another ref).
    ///
    /// # Panics
    /// If the repo or revision does not exist (a test set-up mistake).
    pub fn set_ref(&self, kind: RepoKind, id: &str, reference: &str, revision: &str) {
        self.with_repo(kind, id, |repo| {
            let sha = repo
                .resolve(revision)
                .unwrap_or_else(|| panic!("hub stand-in: {id} has no revision {revision}"))
                .sha
                .clone();
            repo.refs.insert(reference.to_owned(), sha);
        });
    }

    /// Removes a ref; returns whether it existed.
    pub fn delete_ref(&self, kind: RepoKind, id: &str, reference: &str) -> bool {
        self.with_repo(kind, id, |repo| repo.refs.remove(reference).is_some())
    }

    /// Sets `gated` to `None`, `Some("auto")` or `Some("manual")`.
    pub fn set_gated(&self, kind: RepoKind, id: &str, gated: Option<&str>) {
        self.with_repo(kind, id, |repo| repo.gated = gated.map(str::to_owned));
    }

    /// Makes the repo private (invisible without an accepted token) or public.
    pub fn set_private(&self, kind: RepoKind, id: &str, private: bool) {
        self.with_repo(kind, id, |repo| repo.private = private);
    }

    /// Disables the repo (403 `Access to this resource is disabled.`).
    pub fn set_disabled(&self, kind: RepoKind, id: &str, disabled: bool) {
        self.with_repo(kind, id, |repo| repo.disabled = disabled);
    }

    /// Renames repo `old` to `new`, as the Hub does when a repo moves: requests naming `old`
    /// get a relative `307` to the same path under `new` from now on.
    ///
    /// # Panics
    /// If `old` does not exist or `new` does (a test set-up mistake).
    pub fn rename(&self, kind: RepoKind, old: &str, new: &str) {
        let mut state = self.write();
        let mut repo = state
            .repos
            .remove(&(kind, old.to_owned()))
            .unwrap_or_else(|| panic!("hub stand-in: no {} repo {old}", kind.plural()));
        assert!(
            !state.repos.contains_key(&(kind, new.to_owned())),
            "hub stand-in: {new} exists already"
        );
        repo.id = new.to_owned();
        state.repos.insert((kind, new.to_owned()), repo);
        for target in state.renames.values_mut() {
            if target == old {
                *target = new.to_owned();
            }
        }
        state.renames.remove(&(kind, new.to_owned()));
        state.renames.insert((kind, old.to_owned()), new.to_owned());
    }

    /// Sets the `securityFileStatus` the tree and paths-info send for `path` with
    /// `expand=true` (the stand-in does not scan; tests give the value).
    pub fn set_security_status(&self, kind: RepoKind, id: &str, path: &str, status: Value) {
        self.with_repo(kind, id, |repo| {
            repo.security.insert(path.to_owned(), status);
        });
    }

    /// The id a renamed repo lives under now.
    pub fn renamed(&self, kind: RepoKind, old: &str) -> Option<String> {
        self.read().renames.get(&(kind, old.to_owned())).cloned()
    }

    /// Removes a repo entirely; returns whether it existed.
    pub fn remove_repo(&self, kind: RepoKind, id: &str) -> bool {
        self.write().repos.remove(&(kind, id.to_owned())).is_some()
    }

    /// The commit sha `revision` resolves to.
    pub fn resolve(&self, kind: RepoKind, id: &str, revision: &str) -> Option<String> {
        let state = self.read();
        state
            .repos
            .get(&(kind, id.to_owned()))?
            .resolve(revision)
            .map(|commit| commit.sha.clone())
    }

    /// The entry for `path` at `revision`, e.g. to learn a file's SHA-256 or oid.
    pub fn file(
        &self,
        kind: RepoKind,
        id: &str,
        revision: &str,
        path: &str,
    ) -> Option<Arc<FileEntry>> {
        let state = self.read();
        let commit = state.repos.get(&(kind, id.to_owned()))?.resolve(revision)?;
        commit.files.get(path).cloned()
    }

    /// The whole commit `revision` resolves to.
    pub fn commit(&self, kind: RepoKind, id: &str, revision: &str) -> Option<Arc<Commit>> {
        self.read()
            .repos
            .get(&(kind, id.to_owned()))?
            .resolve(revision)
    }
}

enum Change {
    Put(FileEntry),
    Remove(String),
}

/// Collects changes to one repo; [`RepoBuilder::commit`] applies them.
#[must_use = "nothing happens until .commit(ref)"]
pub struct RepoBuilder {
    hub: Hub,
    kind: RepoKind,
    id: String,
    changes: Vec<Change>,
    clear: bool,
    base: Option<String>,
    title: Option<String>,
    gated: Option<Option<String>>,
    private: Option<bool>,
    disabled: Option<bool>,
    card: Option<Value>,
    tags: Option<Vec<String>>,
    info: Option<serde_json::Map<String, Value>>,
}

impl RepoBuilder {
    /// Adds or replaces a file; LFS when ≥ 10 MiB.
    pub fn file(mut self, path: &str, data: impl Into<Bytes>) -> Self {
        self.changes
            .push(Change::Put(PreparedFile::memory(path, data, None).0));
        self
    }

    /// Adds or replaces a file stored as LFS whatever its size.
    pub fn lfs_file(mut self, path: &str, data: impl Into<Bytes>) -> Self {
        self.changes
            .push(Change::Put(PreparedFile::memory(path, data, Some(true)).0));
        self
    }

    /// Adds or replaces an LFS file stored in Xet under `xet_hash` (see [`crate::XetCas::upload`]).
    pub fn xet_file(mut self, path: &str, data: impl Into<Bytes>, xet_hash: &str) -> Self {
        let mut entry = PreparedFile::memory(path, data, Some(true)).0;
        if let Some(lfs) = entry.lfs.as_mut() {
            lfs.xet_hash = Some(xet_hash.to_owned());
        }
        self.changes.push(Change::Put(entry));
        self
    }

    /// Adds or replaces a file stored in git (not LFS) whatever its size.
    pub fn regular_file(mut self, path: &str, data: impl Into<Bytes>) -> Self {
        self.changes
            .push(Change::Put(PreparedFile::memory(path, data, Some(false)).0));
        self
    }

    /// Adds a file served from disk, hashed now with streaming reads.
    ///
    /// # Panics
    /// If the file cannot be read; see [`RepoBuilder::try_file_from_disk`].
    pub fn file_from_disk(self, path: &str, disk: impl AsRef<Path>, lfs: bool) -> Self {
        let disk = disk.as_ref();
        let shown = disk.display().to_string();
        self.try_file_from_disk(path, disk, lfs)
            .unwrap_or_else(|error| panic!("hub stand-in: cannot hash {shown}: {error}"))
    }

    /// Like [`RepoBuilder::file_from_disk`] but returns I/O errors.
    pub fn try_file_from_disk(
        mut self,
        path: &str,
        disk: impl AsRef<Path>,
        lfs: bool,
    ) -> std::io::Result<Self> {
        self.changes
            .push(Change::Put(PreparedFile::disk(path, disk, Some(lfs))?.0));
        Ok(self)
    }

    /// Adds an already hashed file.
    pub fn prepared(mut self, file: PreparedFile) -> Self {
        self.changes.push(Change::Put(file.0));
        self
    }

    /// Removes a file (or every file under a directory) from the new commit.
    pub fn remove(mut self, path: &str) -> Self {
        self.changes.push(Change::Remove(clean_path(path)));
        self
    }

    /// Starts the new commit from an empty tree instead of the ref's current tree.
    pub fn clear(mut self) -> Self {
        self.clear = true;
        self
    }

    /// Starts the new commit from `revision`'s tree (and uses it as parent).
    pub fn base(mut self, revision: &str) -> Self {
        self.base = Some(revision.to_owned());
        self
    }

    /// The commit title.
    pub fn message(mut self, title: &str) -> Self {
        self.title = Some(title.to_owned());
        self
    }

    /// Sets `cardData` (README front matter: license, base_model, tags, …).
    pub fn card(mut self, card: Value) -> Self {
        self.card = Some(card);
        self
    }

    /// Gates the repo: `"auto"` or `"manual"`.
    pub fn gated(mut self, mode: &str) -> Self {
        self.gated = Some(Some(mode.to_owned()));
        self
    }

    /// Makes the repo private or public.
    pub fn private(mut self, private: bool) -> Self {
        self.private = Some(private);
        self
    }

    /// Disables or enables the repo.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = Some(disabled);
        self
    }

    /// Sets more top-level fields of the repo info, sent as given (e.g. a recorded answer from
    /// [`crate::fixtures`]). The stand-in keeps answering `id`, `modelId`, `sha` and `siblings`
    /// from its own model; every other field given here replaces the one it would compute.
    pub fn info(mut self, fields: Value) -> Self {
        if let Value::Object(map) = fields {
            self.info = Some(map);
        }
        self
    }

    /// Replaces the repo's own tags (`license:…` etc. are derived from the card).
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Creates a commit on `reference` (a branch, `refs/pr/N`, …), moves the
    /// ref to it and returns its sha.
    ///
    /// # Panics
    /// If [`RepoBuilder::base`] names a revision that does not exist.
    pub fn commit(self, reference: &str) -> String {
        let mut guard = self.hub.write();
        let state = &mut *guard;
        state.clock += 60;
        let timestamp = START_OF_TIME + state.clock;
        let key = (self.kind, self.id.clone());
        let repo = state.repos.entry(key).or_insert_with(|| Repo {
            kind: self.kind,
            id: self.id.clone(),
            object_id: hash::git_hash(format!("{}/{}", self.kind.plural(), self.id).as_bytes())
                [..24]
                .to_owned(),
            created_at: timestamp,
            commits: HashMap::new(),
            refs: BTreeMap::new(),
            gated: None,
            private: false,
            disabled: false,
            card: None,
            tags: Vec::new(),
            info: serde_json::Map::new(),
            security: HashMap::new(),
        });
        let parent = match &self.base {
            Some(base) => Some(
                repo.resolve(base)
                    .unwrap_or_else(|| panic!("hub stand-in: {} has no revision {base}", self.id)),
            ),
            None => repo.resolve(reference).or_else(|| repo.default_commit()),
        };
        let mut files = match (&parent, self.clear) {
            (Some(parent), false) => parent.files.clone(),
            _ => BTreeMap::new(),
        };
        let mut added = Vec::new();
        for change in self.changes {
            match change {
                Change::Put(entry) => {
                    let entry = Arc::new(entry);
                    added.push(entry.clone());
                    files.insert(entry.path.clone(), entry);
                }
                Change::Remove(path) => {
                    let prefix = format!("{path}/");
                    files.retain(|name, _| name != &path && !name.starts_with(&prefix));
                }
            }
        }
        let dirs = hash::tree_oids(
            files
                .iter()
                .map(|(path, entry)| (path.as_str(), entry.oid.as_str())),
        );
        let title = self
            .title
            .unwrap_or_else(|| format!("Commit {} on {reference}", state_clock_label(timestamp)));
        let parent_sha = parent.as_ref().map(|commit| commit.sha.clone());
        let sha = hash::commit_oid(&dirs[""], parent_sha.as_deref(), timestamp, &title);
        let commit = Arc::new(Commit {
            sha: sha.clone(),
            parent: parent_sha,
            title,
            timestamp,
            files,
            dirs,
        });
        repo.commits.insert(sha.clone(), commit);
        repo.refs.insert(reference.to_owned(), sha.clone());
        if let Some(gated) = self.gated {
            repo.gated = gated;
        }
        if let Some(private) = self.private {
            repo.private = private;
        }
        if let Some(disabled) = self.disabled {
            repo.disabled = disabled;
        }
        if let Some(card) = self.card {
            repo.card = Some(card);
        }
        if let Some(tags) = self.tags {
            repo.tags = tags;
        }
        if let Some(info) = self.info {
            repo.info = info;
        }
        for entry in added {
            if let Some(lfs) = &entry.lfs {
                state
                    .blob_paths
                    .entry(lfs.sha256.clone())
                    .or_default()
                    .insert(entry.path.clone());
                state.blobs.entry(lfs.sha256.clone()).or_insert(entry);
            }
        }
        sha
    }
}

fn state_clock_label(timestamp: i64) -> String {
    hash::iso_date(timestamp)
}
