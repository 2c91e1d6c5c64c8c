//! Content digests: sha256 (the store key and the LFS oid), the git blob sha1 and, for content
//! that enters the store, the Xet chunking ([`crate::xet`]).

use sha1::Sha1;
use sha2::Digest;

use crate::registry::Sha256;
use crate::xet::{PipelinedXetHasher, XetChunking};

/// The digests of one file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// sha256 of the content.
    pub sha256: Sha256,
    /// git blob oid, when it was computed.
    pub git_oid: Option<String>,
    /// The Xet chunking and file hash, when it was computed ([`ContentHasher::with_xet`]).
    pub xet: Option<XetChunking>,
}

/// Hashes content incrementally; the git oid is computed only when asked for (regular files),
/// and the Xet chunking only with [`ContentHasher::with_xet`] (content that enters the store).
pub struct ContentHasher {
    sha256: sha2::Sha256,
    git: Option<Sha1>,
    xet: Option<PipelinedXetHasher>,
    size: u64,
    fed: u64,
}

impl ContentHasher {
    /// A hasher for content of `size` bytes; `git` also computes the git blob oid.
    pub fn new(size: u64, git: bool) -> Self {
        let git = git.then(|| {
            let mut sha1 = Sha1::new();
            sha1.update(format!("blob {size}\0").as_bytes());
            sha1
        });
        ContentHasher {
            sha256: sha2::Sha256::new(),
            git,
            xet: None,
            size,
            fed: 0,
        }
    }

    /// Also compute the Xet chunking (on a thread of its own for large content, so it runs
    /// beside sha256 rather than after it). Call before feeding any bytes.
    pub fn with_xet(mut self) -> Self {
        self.xet = Some(PipelinedXetHasher::new(self.size));
        self
    }

    /// Feed the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        if let Some(xet) = &mut self.xet {
            xet.update(bytes);
        }
        if let Some(git) = &mut self.git {
            git.update(bytes);
        }
        self.fed += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// Final digests.
    pub fn finish(self) -> Digests {
        Digests {
            sha256: Sha256::from_bytes(&self.sha256.finalize().into()),
            git_oid: self.git.map(|g| hex::encode(g.finalize())),
            xet: self.xet.map(PipelinedXetHasher::finish),
        }
    }
}

/// Digests and size of a file on disk (`git` also computes the git blob oid).
pub fn digest_file(path: &std::path::Path, git: bool) -> std::io::Result<(Digests, u64)> {
    digest_file_inner(path, git, false)
}

/// [`digest_file`] that also computes the Xet chunking, in the same read.
pub fn digest_file_with_xet(path: &std::path::Path, git: bool) -> std::io::Result<(Digests, u64)> {
    digest_file_inner(path, git, true)
}

/// [`digest_file`], or with `xet` [`digest_file_with_xet`].
pub fn digest_file_as(
    path: &std::path::Path,
    git: bool,
    xet: bool,
) -> std::io::Result<(Digests, u64)> {
    digest_file_inner(path, git, xet)
}

fn digest_file_inner(
    path: &std::path::Path,
    git: bool,
    xet: bool,
) -> std::io::Result<(Digests, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut hasher = ContentHasher::new(size, git);
    if xet {
        hasher = hasher.with_xet();
    }
    let mut buffer = vec![0u8; 4 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    if hasher.fed() != size {
        return Err(std::io::Error::other(
            "the file changed size while it was hashed",
        ));
    }
    Ok((hasher.finish(), size))
}

/// Digests of an in-memory buffer.
pub fn digest_bytes(bytes: &[u8], git: bool) -> Digests {
    let mut hasher = ContentHasher::new(bytes.len() as u64, git);
    hasher.update(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_oid_matches_git() {
        let d = digest_bytes(b"Hello, World!", true);
        assert_eq!(
            d.git_oid.unwrap(),
            "b45ef6fec89518d314f546fd6c3025367b721684"
        );
        assert_eq!(
            d.sha256,
            "dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f"
        );
        assert_eq!(
            digest_bytes(b"", true).git_oid.unwrap(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }
}

/// The LFS pointer text of content with this sha256 and size (hub-protocol.md §4).
pub fn lfs_pointer(sha256: &Sha256, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// The git oid of the LFS pointer of content with this sha256 and size: what the Hub lists as
/// an LFS file's `oid`/`blobId`.
pub fn lfs_pointer_oid(sha256: &Sha256, size: u64) -> String {
    digest_bytes(lfs_pointer(sha256, size).as_bytes(), true)
        .git_oid
        .unwrap_or_default()
}

#[cfg(test)]
mod pointer_tests {
    #[test]
    fn pointer_oid_matches_the_hub() {
        // hub-protocol.md §4: mcpotato/42-eicar-street's pytorch_model.bin.
        assert_eq!(
            super::lfs_pointer_oid(
                &"f9343d7d7ec5c3d8bcced056c438fc9f1d3819e9ca3d42418a40857050e10e20"
                    .parse()
                    .unwrap(),
                22
            ),
            "cd1c6d8bde5006076655711a49feae66f07d707e"
        );
    }
}
