//! `larder convert`: turn a held safetensors revision into GGUF (or another dtype), publish the
//! output into the store, and register it as a derived repo with provenance.
//!
//! The derived repo (default `ORG/NAME-GGUF`, or `ORG/NAME-F16` for a dtype conversion) keeps
//! one file per type: each conversion adds or replaces its file in a new commit on `main`,
//! together with a generated model card naming `base_model`, the relation, the source commit,
//! the exact parameters, Larder's version and the source's licence fields, so the mirror serves
//! it like any repo and a licence audit sees what it inherits.
//!
//! The converter writes into a private directory under the store's `tmp/`; only complete,
//! hashed files are published, and `--out` copies land under a temporary name renamed when
//! whole. A conversion cancelled ([`ConvertRequest::cancel`]) before its outputs are published
//! removes that directory and fails with [`ConvertRunError::Interrupted`]: nothing partial is
//! left and nothing is registered, so running it again starts afresh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::Larder;
use crate::failure::{Classify, FailureKind, Hint};
use crate::fetch::digest::{digest_bytes, digest_file_with_xet, lfs_pointer_oid};
use crate::hub::RepoId;
use crate::interrupt::Interrupted;
use crate::record::{self, Checked};
use crate::registry::{
    CommitDetail, CommitId, CommitRef, Derivation, FileRecord, LicenceFields, RegistryError,
    RepoKind, Sha256, SnapshotRecord,
};
use crate::report::Reporter;
use crate::store::StoreError;
use larder_convert::{ConvertError, Dtype, GgufOptions, GgufType, OutputFile, SourceFiles};

/// Files of at least this size are recorded as LFS, as the Hub does.
const LFS_THRESHOLD: u64 = 10 << 20;

/// What to produce.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// A GGUF file of this type.
    Gguf(GgufType),
    /// safetensors in this dtype.
    Safetensors(Dtype),
}

impl Target {
    fn label(self) -> String {
        match self {
            Target::Gguf(ty) => ty.to_string().to_uppercase(),
            Target::Safetensors(dtype) => format!("{dtype:?}").to_uppercase(),
        }
    }
}

/// A conversion request.
#[derive(Debug, Clone)]
pub struct ConvertRequest {
    /// Source repo kind.
    pub kind: RepoKind,
    /// Source repo.
    pub repo: RepoId,
    /// Revision held (branch, tag or commit).
    pub revision: String,
    /// Output type.
    pub target: Target,
    /// Derived repo name; default `ORG/NAME-GGUF` or `ORG/NAME-<DTYPE>`.
    pub name: Option<String>,
    /// Also write the output here (a file for GGUF, a directory for safetensors).
    pub out: Option<PathBuf>,
    /// Quantization threads (default: all cores).
    pub threads: Option<usize>,
    /// An importance matrix (llama-imatrix output, GGUF or legacy `.dat`) for GGUF types.
    pub imatrix: Option<PathBuf>,
    /// Cancel to stop the conversion before it publishes anything (see the module docs).
    pub cancel: CancellationToken,
}

/// What a conversion produced.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertOutcome {
    /// Source `org/name`.
    pub source: String,
    /// Source commit.
    pub source_commit: CommitId,
    /// Derived repo.
    pub derived: String,
    /// Derived commit.
    pub commit: CommitId,
    /// Output files (path in the derived repo, size, sha256).
    pub files: Vec<(String, u64, Sha256)>,
    /// Tensors per type, for GGUF.
    pub types: BTreeMap<String, usize>,
    /// Non-fatal warnings of the converter.
    pub warnings: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertRunError {
    /// The source revision is not held.
    #[error("`{repo}@{revision}` is not held")]
    NotHeld {
        /// Repo.
        repo: String,
        /// Revision.
        revision: String,
    },
    /// Files the converter needs are listed but not downloaded.
    #[error("`{repo}` is held without {missing:?}")]
    Incomplete {
        /// Repo.
        repo: String,
        /// Missing paths.
        missing: Vec<String>,
    },
    /// The derived name is not a valid repo id.
    #[error("invalid derived repo name")]
    Name(#[from] crate::hub::NameError),
    /// The converter refused the checkpoint.
    #[error("conversion of `{repo}` failed")]
    Convert {
        /// Repo.
        repo: String,
        /// Cause.
        #[source]
        source: ConvertError,
    },
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Registry failure.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Writing `--out` failed.
    #[error("could not write {path}")]
    Out {
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The conversion thread died.
    #[error("the conversion task failed: {0}")]
    Task(String),
    /// The conversion was cancelled; its partial output was removed.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl Hint for ConvertRunError {
    fn hint(&self) -> Option<String> {
        use larder_convert::ConvertError;
        match self {
            ConvertRunError::NotHeld { repo, revision } => {
                Some(format!("`larder pull {repo}@{revision}` first"))
            }
            ConvertRunError::Incomplete { repo, .. } => Some(format!(
                "pull `{repo}` again without --include/--exclude filters"
            )),
            ConvertRunError::Convert { source, .. } => match source {
                ConvertError::NeedsImatrix(_) => Some(
                    "make one with llama-imatrix and pass it with --imatrix (docs/convert.md)"
                        .to_owned(),
                ),
                ConvertError::InvalidSafetensors { .. }
                | ConvertError::Safetensors { .. }
                | ConvertError::InvalidMxfp4 { .. }
                | ConvertError::ShapeMismatch { .. }
                | ConvertError::MissingTensor(_) => Some(
                    "the checkpoint does not agree with itself or with its config.json: \
                     `larder verify` checks the held bytes against their digests"
                        .to_owned(),
                ),
                _ => None,
            },
            ConvertRunError::Store(e) => e.hint(),
            ConvertRunError::Registry(e) => e.hint(),
            _ => None,
        }
    }
}

impl Classify for ConvertRunError {
    fn failure_kind(&self) -> FailureKind {
        use larder_convert::ConvertError;
        match self {
            ConvertRunError::NotHeld { .. } => FailureKind::NotFound,
            ConvertRunError::Incomplete { .. } | ConvertRunError::Name(_) => FailureKind::Invalid,
            ConvertRunError::Convert { source, .. } => match source {
                ConvertError::Io { source, .. } | ConvertError::Write(source) => {
                    source.failure_kind()
                }
                ConvertError::ThreadPool(_) => FailureKind::Other,
                // The checkpoint (or the requested type) is not one the converter takes.
                _ => FailureKind::Invalid,
            },
            ConvertRunError::Store(e) => e.failure_kind(),
            ConvertRunError::Out { source, .. } => source.failure_kind(),
            ConvertRunError::Registry(e) => e.failure_kind(),
            ConvertRunError::Task(_) => FailureKind::Other,
            ConvertRunError::Interrupted(e) => e.failure_kind(),
        }
    }
}

/// A file written for the derived repo, published in the store.
struct Produced {
    path: String,
    size: u64,
    sha256: Sha256,
    git_oid: String,
    lfs: bool,
}

/// What a conversion tells its [`Reporter`] as it goes.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ConvertEvent {
    /// Tensor data converted so far.
    Tensors {
        /// Bytes of source tensor data converted.
        done: u64,
        /// Bytes of source tensor data in all.
        total: u64,
    },
}

/// Run a conversion, telling `reporter` how far the tensor data has got: the held source,
/// the converter on a blocking thread, the outputs and a model card published, then the
/// derived repo's new commit recorded with its provenance.
pub async fn convert(
    larder: &Larder,
    request: &ConvertRequest,
    reporter: Arc<dyn Reporter<ConvertEvent>>,
) -> Result<ConvertOutcome, ConvertRunError> {
    let started = std::time::Instant::now();
    let _gc_guard = larder.local.gc_guard().await?;
    let name = request.repo.as_str();
    let (sha, detail, sources) = held_source(larder, request).await?;
    let label = request.target.label();
    let derived_name = match &request.name {
        Some(n) => RepoId::parse(n)?.to_string(),
        None => match request.target {
            Target::Gguf(_) => format!("{name}-GGUF"),
            Target::Safetensors(_) => format!("{name}-{label}"),
        },
    };
    let tmp = larder.local.tmp_dir().join(format!(
        "convert-{}-{}",
        std::process::id(),
        crate::now_unix()
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| StoreError::io("could not create", &tmp, e))?;
    let converted = match converted_in(request, sources, &tmp, &derived_name, reporter).await {
        Ok(converted) => converted,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(error);
        }
    };
    let (outputs, types, warnings) = converted;

    let mut produced = publish_outputs(larder, request, outputs).await?;
    let params = serde_json::json!({
        "to": match request.target { Target::Gguf(_) => "gguf", Target::Safetensors(_) => "safetensors" },
        "type": label,
        "imatrix": request.imatrix.as_ref().and_then(|p| p.file_name()).map(|f| f.to_string_lossy()),
        "source": name,
        "source_commit": sha,
    });
    let card = card(name, &sha, &derived_name, &label, &detail.licence, &params);
    produced.push(publish_card(larder, &tmp, card.text.into_bytes()).await?);
    let _ = std::fs::remove_dir_all(&tmp);

    let commit = record_derived(
        larder,
        request,
        &derived_name,
        &produced,
        card.data,
        &detail.licence,
    )
    .await?;
    larder
        .registry
        .record_derivation(Derivation {
            derived: CommitRef {
                kind: request.kind,
                name: derived_name.clone(),
                sha: commit,
            },
            source: CommitRef {
                kind: request.kind,
                name: name.to_owned(),
                sha,
            },
            tool: "larder convert".to_owned(),
            params,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at: crate::now_unix(),
        })
        .await?;
    crate::licence::record_held_detection(larder, request.kind, &derived_name, &commit).await;
    Ok(ConvertOutcome {
        source: name.to_owned(),
        source_commit: sha,
        derived: derived_name,
        commit,
        files: produced
            .into_iter()
            .map(|p| (p.path, p.size, p.sha256))
            .collect(),
        types,
        warnings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The held revision the request names: its commit, its detail, and the store's files the
/// converter reads. Fails when it is not held, or held without a file the converter needs.
async fn held_source(
    larder: &Larder,
    request: &ConvertRequest,
) -> Result<(CommitId, CommitDetail, SourceFiles), ConvertRunError> {
    let name = request.repo.as_str();
    let not_held = || ConvertRunError::NotHeld {
        repo: name.to_owned(),
        revision: request.revision.clone(),
    };
    let sha = larder
        .registry
        .resolve(request.kind, name, &request.revision)
        .await?
        .ok_or_else(not_held)?;
    let detail = larder
        .registry
        .commit_detail(request.kind, name, &sha)
        .await?
        .ok_or_else(not_held)?;
    let needed = |path: &str| {
        path.ends_with(".safetensors")
            || path.ends_with(".json")
            || path == "tokenizer.model"
            || path.ends_with(".jinja")
    };
    let missing: Vec<String> = detail
        .files
        .iter()
        .filter(|f| needed(&f.path) && !f.held)
        .map(|f| f.path.clone())
        .collect();
    if !missing.is_empty() {
        return Err(ConvertRunError::Incomplete {
            repo: name.to_owned(),
            missing,
        });
    }
    let mut sources = BTreeMap::new();
    for file in detail.files.iter().filter(|f| f.held) {
        if let Some(sha256) = &file.sha256 {
            sources.insert(file.path.clone(), larder.blobs.fetch_local(sha256).await?);
        }
    }
    Ok((sha, detail, SourceFiles::new(sources)))
}

/// Runs the converter into `tmp` on a blocking thread. The request's cancellation raises a
/// flag the converter polls; cancelled at any point, even as the last tensor was written, the
/// conversion is interrupted (the caller removes `tmp`, nothing is published).
async fn converted_in(
    request: &ConvertRequest,
    sources: SourceFiles,
    tmp: &Path,
    derived_name: &str,
    reporter: Arc<dyn Reporter<ConvertEvent>>,
) -> Result<ConverterOutput, ConvertRunError> {
    let name = request.repo.as_str();
    let target = request.target;
    let threads = request.threads;
    let imatrix = request.imatrix.clone();
    let repo_for_errors = name.to_owned();
    let tmp = tmp.to_path_buf();
    let base = name.rsplit('/').next().unwrap_or(name).to_owned();
    let derived = derived_name.to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let raise = {
        let (stop, cancel) = (stop.clone(), request.cancel.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let result = tokio::task::spawn_blocking(move || {
        run_converter(
            &sources,
            target,
            &tmp,
            &base,
            &derived,
            threads,
            imatrix.as_deref(),
            reporter.as_ref(),
            &stop,
        )
        .map_err(|source| match source {
            ConvertError::Cancelled => Interrupted::default().into(),
            source => ConvertRunError::Convert {
                repo: repo_for_errors,
                source,
            },
        })
    })
    .await
    .map_err(|e| ConvertRunError::Task(e.to_string()));
    raise.abort();
    match result {
        Ok(Ok(_)) if request.cancel.is_cancelled() => Err(Interrupted::default().into()),
        Ok(result) => result,
        Err(error) => Err(error),
    }
}

/// Publishes every output file into the store (and copies it to `--out`) and records its
/// blob. The writer of larder-convert hashes sha256 as it writes but knows nothing of Xet, so
/// a GGUF's Xet chunking is computed here from the freshly written (page-cached) file; other
/// outputs are hashed once more from disk, all digests in one read.
async fn publish_outputs(
    larder: &Larder,
    request: &ConvertRequest,
    outputs: Vec<Output>,
) -> Result<Vec<Produced>, ConvertRunError> {
    let mut produced = Vec::new();
    for Output { path, file, digest } in outputs {
        // The converter's digest of what it wrote, when it kept one (always lowercase hex).
        let digest = digest.and_then(|(sha256, size)| Some((Sha256::parse(&sha256).ok()?, size)));
        let (sha256, size, git_oid, chunking) = match digest {
            Some((sha256, size)) => {
                let oid = lfs_pointer_oid(&sha256, size);
                let chunking = crate::xet::hash_file(&file)
                    .map_err(|e| StoreError::io("could not read", &file, e))?;
                (sha256, size, oid, chunking)
            }
            None => {
                let (digests, size) = digest_file_with_xet(&file, true)
                    .map_err(|e| StoreError::io("could not read", &file, e))?;
                let lfs_sized = size >= LFS_THRESHOLD || path.ends_with(".safetensors");
                let oid = if lfs_sized {
                    lfs_pointer_oid(&digests.sha256, size)
                } else {
                    digests.git_oid.unwrap_or_default()
                };
                // Always computed by `digest_file_with_xet`; read again only if it were not.
                let chunking = match digests.xet {
                    Some(chunking) => chunking,
                    None => crate::xet::hash_file(&file)
                        .map_err(|e| StoreError::io("could not read", &file, e))?,
                };
                (digests.sha256, size, oid, chunking)
            }
        };
        let lfs =
            size >= LFS_THRESHOLD || path.ends_with(".gguf") || path.ends_with(".safetensors");
        if let Some(out) = &request.out {
            copy_out(&file, out, &path, request.target)?;
        }
        larder.blobs.publish(&file, &sha256).await?;
        record::record_blob(larder, &sha256, size, Checked::Verified, Some(&chunking)).await?;
        produced.push(Produced {
            path,
            size,
            sha256,
            git_oid,
            lfs,
        });
    }
    Ok(produced)
}

/// Writes the model card into `tmp`, publishes it and records its blob.
async fn publish_card(
    larder: &Larder,
    tmp: &Path,
    card: Vec<u8>,
) -> Result<Produced, ConvertRunError> {
    let card_path = tmp.join("README.md");
    std::fs::write(&card_path, &card)
        .map_err(|e| StoreError::io("could not write", &card_path, e))?;
    let digest = digest_bytes(&card, true);
    larder.blobs.publish(&card_path, &digest.sha256).await?;
    record::record_blob(
        larder,
        &digest.sha256,
        card.len() as u64,
        Checked::Verified,
        Some(&crate::xet::hash_bytes(&card)),
    )
    .await?;
    Ok(Produced {
        path: "README.md".to_owned(),
        size: card.len() as u64,
        sha256: digest.sha256,
        git_oid: digest.git_oid.unwrap_or_default(),
        lfs: false,
    })
}

/// Records the derived repo's new commit on `main`: its current files with `produced` added or
/// replaced, the card's data, the source's licence fields (never gated). Returns the commit.
async fn record_derived(
    larder: &Larder,
    request: &ConvertRequest,
    derived_name: &str,
    produced: &[Produced],
    card_json: serde_json::Value,
    licence: &LicenceFields,
) -> Result<CommitId, ConvertRunError> {
    let parent = larder
        .registry
        .resolve(request.kind, derived_name, "main")
        .await?;
    let mut tree: BTreeMap<String, FileRecord> = BTreeMap::new();
    if let Some(parent_sha) = &parent
        && let Some(previous) = larder
            .registry
            .commit_detail(request.kind, derived_name, parent_sha)
            .await?
    {
        for file in previous.files {
            tree.insert(
                file.path.clone(),
                FileRecord {
                    path: file.path,
                    size: file.size,
                    git_oid: file.git_oid,
                    sha256: file.sha256,
                    lfs: file.lfs,
                },
            );
        }
    }
    for p in produced {
        tree.insert(
            p.path.clone(),
            FileRecord {
                path: p.path.clone(),
                size: p.size,
                git_oid: p.git_oid.clone(),
                sha256: Some(p.sha256),
                lfs: p.lfs,
            },
        );
    }
    let commit = derived_commit_id(parent.as_ref(), tree.values());
    larder
        .registry
        .record_snapshot(SnapshotRecord {
            kind: request.kind,
            name: derived_name.to_owned(),
            upstream: "larder convert".to_owned(),
            gated: None,
            private: false,
            commit,
            card_json: Some(card_json),
            refs: vec!["main".to_owned()],
            seen_at: crate::now_unix(),
            files: tree.into_values().collect(),
            licence: LicenceFields {
                gated: None,
                ..licence.clone()
            },
        })
        .await?;
    crate::manifest::publish_logged(larder, request.kind, derived_name, &commit).await;
    Ok(commit)
}

/// One file the converter wrote: its path in the derived repo, where it is, and its sha256 and
/// size when they were computed while writing.
struct Output {
    path: String,
    file: PathBuf,
    digest: Option<(String, u64)>,
}

type ConverterOutput = (Vec<Output>, BTreeMap<String, usize>, Vec<String>);

/// Run the converter into `tmp`; returns (repo path, file) pairs.
#[allow(clippy::too_many_arguments)]
fn run_converter(
    sources: &SourceFiles,
    target: Target,
    tmp: &Path,
    base: &str,
    derived: &str,
    threads: Option<usize>,
    imatrix: Option<&Path>,
    reporter: &dyn Reporter<ConvertEvent>,
    cancel: &AtomicBool,
) -> Result<ConverterOutput, ConvertError> {
    let callback = |done: u64, total: u64| reporter.report(&ConvertEvent::Tensors { done, total });
    match target {
        Target::Gguf(ty) => {
            let file_name = format!("{base}-{}.gguf", target.label());
            let part = tmp.join(&file_name);
            let mut writer = OutputFile::create(&part).map_err(|source| ConvertError::Io {
                op: "create",
                path: part.clone(),
                source,
            })?;
            let matrix = imatrix.map(larder_convert::Imatrix::load).transpose()?;
            let matrix_file = imatrix
                .and_then(Path::file_name)
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let options = GgufOptions {
                name: Some(derived),
                threads,
                progress: Some(&callback),
                pre_tokenizer: None,
                imatrix: matrix.as_ref().map(|m| (m, matrix_file.as_str())),
                cancel: Some(cancel),
            };
            let report = larder_convert::convert_to_gguf(sources, ty, &mut writer, &options)?;
            // Synced by the store's publish, like every file it names.
            let (sha256, size) = writer.finish().map_err(|source| ConvertError::Io {
                op: "write",
                path: part.clone(),
                source,
            })?;
            let output = Output {
                path: file_name,
                file: part,
                digest: Some((sha256, size)),
            };
            Ok((vec![output], report.types, report.warnings))
        }
        Target::Safetensors(dtype) => {
            let out = tmp.join("out");
            std::fs::create_dir_all(&out).map_err(|source| ConvertError::Io {
                op: "create",
                path: out.clone(),
                source,
            })?;
            let options = larder_convert::DtypeOptions {
                progress: Some(&callback),
                cancel: Some(cancel),
                ..Default::default()
            };
            let report = larder_convert::convert_dtype_with(sources, dtype, &out, &options)?;
            let mut files = Vec::new();
            let output = |name: &str| Output {
                path: name.to_owned(),
                file: out.join(name),
                digest: report.digests.get(name).cloned(),
            };
            for name in report.shards.iter().chain(report.copied.iter()) {
                files.push(output(name));
            }
            let index = "model.safetensors.index.json";
            if out.join(index).is_file() && !files.iter().any(|o| o.path == index) {
                files.push(output(index));
            }
            Ok((files, BTreeMap::new(), report.warnings))
        }
    }
}

fn copy_out(file: &Path, out: &Path, path: &str, target: Target) -> Result<(), ConvertRunError> {
    let dest = match target {
        Target::Gguf(_) if !out.is_dir() => out.to_path_buf(),
        _ => out.join(path),
    };
    let io = |source| ConvertRunError::Out {
        path: dest.clone(),
        source,
    };
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = dest.with_extension("larder-tmp");
    std::fs::copy(file, &tmp).map_err(io)?;
    std::fs::rename(&tmp, &dest).map_err(io)
}

/// A deterministic commit id for a derived tree: sha1 over the parent and the sorted entries.
fn derived_commit_id<'a>(
    parent: Option<&CommitId>,
    files: impl Iterator<Item = &'a FileRecord>,
) -> CommitId {
    use sha1::Digest;
    let parent = parent.map_or("-", CommitId::as_str);
    let mut text = format!("larder-derived\nparent {parent}\n");
    for file in files {
        text.push_str(&format!("{} {} {}\n", file.git_oid, file.size, file.path));
    }
    // The git blob id of that text, as earlier versions computed it: ids stay stable.
    let mut sha1 = sha1::Sha1::new();
    sha1.update(format!("blob {}\0", text.len()).as_bytes());
    sha1.update(text.as_bytes());
    CommitId::from_bytes(&sha1.finalize().into())
}

struct Card {
    text: String,
    data: serde_json::Value,
}

/// The generated model card: YAML front matter (as the Hub reads it) plus a short body.
fn card(
    source: &str,
    source_commit: &CommitId,
    derived: &str,
    label: &str,
    licence: &LicenceFields,
    params: &serde_json::Value,
) -> Card {
    let mut data = serde_json::json!({
        "base_model": source,
        "base_model_relation": "quantized",
        "tags": ["larder", if label.starts_with('F') || label.starts_with("BF") { "safetensors" } else { "gguf" }],
        "larder": {
            "source_commit": source_commit,
            "params": params,
            "tool_version": env!("CARGO_PKG_VERSION"),
        },
    });
    let mut yaml = format!("---\nbase_model: {source}\nbase_model_relation: quantized\n");
    for (key, value) in [
        ("license", &licence.license),
        ("license_name", &licence.license_name),
        ("license_link", &licence.license_link),
    ] {
        if let Some(value) = value {
            yaml.push_str(&format!(
                "{key}: {}\n",
                serde_json::Value::String(value.clone())
            ));
            data[key] = serde_json::Value::String(value.clone());
        }
    }
    yaml.push_str("tags:\n- larder\n---\n");
    let text = format!(
        "{yaml}\n# {derived}\n\n{label} conversion of [{source}](../../{source}) at commit \
         `{source_commit}`, made by larder {}.\n\nThe licence of the source model applies to \
         this derivative{}.\n",
        env!("CARGO_PKG_VERSION"),
        licence
            .license
            .as_deref()
            .map(|l| format!(" (`{l}`)"))
            .unwrap_or_default()
    );
    Card { text, data }
}
