//! The content-addressed blob store.
//!
//! Blobs are immutable, named by the sha256 of their content. A blob only ever appears by
//! publishing a fully written and verified part, so a reader that sees a blob sees all of it.
//! Partial data always lives in the node's local `tmp/` until then.
//!
//! [`BlobStore`] is what the rest of Larder talks to; two backends implement it:
//! [`LocalStore`] (the home directory, the default) and [`S3Store`] (an S3-compatible bucket
//! shared by several nodes, with the home's `blobs/` as a node-local cache). [`open`] picks one
//! from a store URL.

mod fs;
pub mod location;
pub mod materialize;
mod s3;
pub mod stamp;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::registry::Sha256;

pub use fs::{LocalStore, StoreError, copy_range};
pub use location::StoreLocation;
pub use s3::S3Store;

/// A stream of body bytes read from the store.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

/// A blob found by [`BlobStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    /// Content sha256.
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written (unix seconds), if known.
    pub modified: Option<i64>,
}

/// Where blobs and revision manifests are kept. Object-safe: held as `Arc<dyn BlobStore>`.
///
/// Every method that names a blob takes its [`Sha256`], checked where it entered Larder, so a
/// blob's key or path can only ever be a digest.
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// A human-readable name: a directory or an `s3://` URL.
    fn describe(&self) -> String;

    /// Whether blobs live outside this node (a shared bucket).
    fn is_shared(&self) -> bool;

    /// A verified local file holding the blob, if this node has one right now. This is the
    /// fast path for serving, mmap and hard links; it never touches the network.
    fn local_path(&self, sha256: &Sha256) -> Option<PathBuf>;

    /// Size of the stored blob; `None` when absent.
    fn stat<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<Option<u64>, StoreError>>;

    /// Publish a verified, synced part as blob `sha256`; the part is consumed. If the blob
    /// already exists (same content, published by someone else first) that is success.
    /// Returns the local path of the blob when the backend keeps one.
    fn publish<'a>(
        &'a self,
        part: &'a Path,
        sha256: &'a Sha256,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, StoreError>>;

    /// Publish a group of verified parts (`(part, sha256)` pairs), as [`BlobStore::publish`]
    /// does for one: every blob of the group is whole and durable in the store when this
    /// returns. Backends may share the syncing between the parts (one directory sync per
    /// group); the default publishes them one by one. On failure some blobs of the group may
    /// be published and the rest of the parts stay where they were.
    fn publish_group<'a>(
        &'a self,
        parts: &'a [(PathBuf, Sha256)],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            for (part, sha256) in parts {
                self.publish(part, sha256).await?;
            }
            Ok(())
        })
    }

    /// Stream bytes `range` of a stored blob.
    fn read<'a>(
        &'a self,
        sha256: &'a Sha256,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, StoreError>>;

    /// A local file with the blob's content, fetched (and verified) into the node's cache
    /// first when the blob lives elsewhere. For conversion, export and licence scanning.
    fn fetch_local<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<PathBuf, StoreError>>;

    /// Every stored blob.
    fn list(&self) -> BoxFuture<'_, Result<Vec<ListedBlob>, StoreError>>;

    /// Move a blob that failed verification aside; returns where it went.
    fn quarantine<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<String, StoreError>>;

    /// Delete a blob (garbage collection).
    fn remove<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A time-limited URL a client can GET the blob from directly, when the backend has one.
    fn presign<'a>(
        &'a self,
        sha256: &'a Sha256,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<url::Url>, StoreError>>;

    /// Write a small metadata document (a revision manifest, a ref) under `key`
    /// (`/`-separated, relative to the store's root).
    fn put_meta<'a>(&'a self, key: &'a str, bytes: Bytes) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Read a metadata document; `None` when absent.
    fn get_meta<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>>;

    /// The keys of the metadata documents under `prefix` (`/`-separated, no trailing slash).
    fn list_meta<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;
}

/// Open the store at `location` for the home `home` (whose `tmp/` holds parts either way).
pub fn open(
    home: &Path,
    location: &StoreLocation,
) -> Result<(LocalStore, Arc<dyn BlobStore>), StoreError> {
    let local = LocalStore::open(home)?;
    let blobs: Arc<dyn BlobStore> = match location {
        StoreLocation::Home => Arc::new(local.clone()),
        StoreLocation::Dir(dir) => Arc::new(LocalStore::open_shared(dir, &local)?),
        StoreLocation::S3(settings) => Arc::new(S3Store::open(settings, local.clone())?),
    };
    Ok((local, blobs))
}
