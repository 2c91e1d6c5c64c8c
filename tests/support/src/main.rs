//! `hub-standin`: serve directories as Hub repos, for benchmarks.
//!
//! Each `--repo KIND:ORG/NAME=DIR` becomes one commit on `main`. Files of at
//! least 10 MiB are LFS files streamed from disk; they are hashed at
//! start-up (in parallel, one progress line per file on stderr). Prints
//! `READY http://127.0.0.1:P` on stdout once listening. With `--xet`, LFS files are also
//! uploaded to xet-core's reference CAS server (in-process, deduplicated across every repo),
//! and advertised as Xet files as the Hub does.

use anyhow::{Context, Result, bail};
use clap::Parser;
use hub_standin::{Hub, LFS_THRESHOLD, PreparedFile, RepoKind, StandIn};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Serve local directories as Hugging Face Hub repos.
#[derive(Debug, Parser)]
#[command(name = "hub-standin", version)]
struct Args {
    /// API port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// CDN listener port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    cdn_port: u16,
    /// Redirect LFS downloads to `{URL}/{sha256}` (e.g. nginx) instead of the built-in CDN.
    #[arg(long, value_name = "URL")]
    cdn_base: Option<String>,
    /// Tree entries per page.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
    /// A repo to serve: `model:org/name=/path/to/dir` (kinds: model, dataset, space).
    #[arg(long = "repo", value_name = "KIND:ID=DIR", required = true)]
    repos: Vec<String>,
    /// Delay every request by this many milliseconds before answering (a WAN round trip).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Hard-link every LFS file into DIR under its sha256 (an nginx root for `--cdn-base`).
    #[arg(long, value_name = "DIR")]
    link_blobs_into: Option<PathBuf>,
    /// Also store LFS files in an in-process Xet CAS and advertise them as Xet files.
    #[arg(long)]
    xet: bool,
}

struct RepoSpec {
    kind: RepoKind,
    id: String,
    dir: PathBuf,
}

fn parse_repo(text: &str) -> Result<RepoSpec> {
    let (kind, rest) = text.split_once(':').context("expected KIND:ORG/NAME=DIR")?;
    let (id, dir) = rest.split_once('=').context("expected KIND:ORG/NAME=DIR")?;
    let kind = RepoKind::parse(kind).with_context(|| format!("unknown repo kind `{kind}`"))?;
    if id.is_empty() || id.split('/').count() > 2 {
        bail!("invalid repo id `{id}`");
    }
    Ok(RepoSpec {
        kind,
        id: id.to_owned(),
        dir: PathBuf::from(dir),
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf, u64)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let metadata =
            std::fs::metadata(&path).with_context(|| format!("cannot stat {}", path.display()))?;
        if metadata.is_dir() {
            walk(root, &path, out)?;
        } else if metadata.is_file() {
            let relative = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            out.push((relative, path, metadata.len()));
        }
    }
    Ok(())
}

/// Hashes files on all cores, largest first, reporting progress on stderr.
fn prepare(files: Vec<(String, PathBuf, u64)>) -> Result<Vec<PreparedFile>> {
    let total = files.len();
    let mut queue: Vec<(usize, (String, PathBuf, u64))> = files.into_iter().enumerate().collect();
    queue.sort_by_key(|(_, (_, _, size))| *size);
    let queue = Mutex::new(queue);
    let done = Mutex::new(Vec::with_capacity(total));
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let next = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .pop();
                        let Some((index, (path, disk, size))) = next else {
                            return Ok(());
                        };
                        let file = if size >= LFS_THRESHOLD {
                            PreparedFile::disk(&path, &disk, Some(true))
                        } else {
                            std::fs::read(&disk)
                                .map(|data| PreparedFile::memory(&path, data, Some(false)))
                        }
                        .with_context(|| format!("cannot hash {}", disk.display()))?;
                        let mut done = done
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        done.push((index, file));
                        if size >= LFS_THRESHOLD {
                            eprintln!(
                                "hub-standin: hashed {path} ({:.1} MiB) [{}/{total}]",
                                size as f64 / 1048576.0,
                                done.len()
                            );
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a hashing thread panicked"))??;
        }
        Ok(())
    })?;
    let mut done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.sort_by_key(|(index, _)| *index);
    Ok(done.into_iter().map(|(_, file)| file).collect())
}

fn link_blob(dir: &Path, sha256: &str, source: &Path) -> Result<()> {
    let target = dir.join(sha256);
    if target.exists() {
        return Ok(());
    }
    std::fs::hard_link(source, &target).with_context(|| {
        format!(
            "cannot hard-link {} to {}",
            source.display(),
            target.display()
        )
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let specs: Vec<RepoSpec> = args
        .repos
        .iter()
        .map(|text| parse_repo(text))
        .collect::<Result<_>>()?;
    if let Some(dir) = &args.link_blobs_into {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let hub = Hub::new();
    let cas = match args.xet {
        true => Some(hub_standin::XetCas::start().await.context("the Xet CAS")?),
        false => None,
    };
    for spec in specs {
        let mut files = Vec::new();
        walk(&spec.dir, &spec.dir, &mut files)?;
        let count = files.len();
        let prepared = tokio::task::spawn_blocking(move || prepare(files)).await??;
        let mut builder = hub.repo(spec.kind, &spec.id);
        for file in prepared {
            if let (Some(dir), Some(lfs), hub_standin::Content::Disk(source)) = (
                &args.link_blobs_into,
                &file.entry().lfs,
                &file.entry().content,
            ) {
                link_blob(dir, &lfs.sha256, source)?;
            }
            let file = match (&cas, &file.entry().lfs, &file.entry().content) {
                (Some(cas), Some(_), hub_standin::Content::Disk(source)) => {
                    let xet_hash = cas.upload_file(source).await.context("a Xet upload")?;
                    eprintln!("hub-standin: stored {} in Xet", file.entry().path);
                    file.with_xet_hash(&xet_hash)
                }
                _ => file,
            };
            builder = builder.prepared(file);
        }
        let sha = builder.commit("main");
        eprintln!(
            "hub-standin: {} {} ({count} files) at {sha}",
            spec.kind.plural(),
            spec.id
        );
    }
    let mut builder = StandIn::builder(hub)
        .page_size(args.page_size)
        .api_port(args.port)
        .cdn_port(args.cdn_port)
        .latency(std::time::Duration::from_millis(args.latency_ms));
    if let Some(base) = args.cdn_base {
        builder = builder.cdn_base_override(base);
    }
    let server = builder.start().await.context("cannot bind")?;
    if let Some(cas) = &cas {
        // No fault can be armed from the command line, so clients get the reference server
        // itself rather than the logging proxy (which reads each xorb range whole before
        // passing it on, and would be timed as part of every client in bench/xet).
        server.attach_xet_url(cas.direct_url(), cas.faults());
        eprintln!("hub-standin: Xet CAS at {}", cas.direct_url());
    }
    eprintln!("hub-standin: CDN at {}", server.cdn_url());
    let mut stdout = std::io::stdout();
    writeln!(stdout, "READY {}", server.url())?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(())
}
