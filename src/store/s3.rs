//! The S3-compatible backend (`s3://bucket/prefix`), built on the `object_store` crate.
//!
//! Layout under the prefix: `blobs/sha256/ab/<hex>` (the content), `manifests/...` and
//! `refs/...` (revision metadata, see [`crate::manifest`]), `quarantine/<hex>.<unix time>`.
//!
//! Publishing streams the verified local part to the blob's final key: in one PUT when it is
//! smaller than a part, else as a multipart upload of bounded parts (never the whole file in
//! memory). S3 makes neither visible before it is complete — a PUT that breaks off stores
//! nothing, and a multipart upload exists only as invisible parts until
//! CompleteMultipartUpload — so no reader ever sees a partial blob; a failed upload is aborted.
//! A key that already holds an object of the right size is not uploaded again (content
//! addressing: it is the same bytes).
//!
//! The node's home `blobs/` directory is a cache of verified blobs: a part published here is
//! also renamed into it (no extra I/O), and [`BlobStore::fetch_local`] fills it from the
//! bucket, hashing the download, for the commands that need a file (convert, export).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::Digest;

use crate::registry::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::location::S3Settings;
use super::{BlobStore, ByteStream, ListedBlob, LocalStore, StoreError};

/// Parts uploaded at once per blob.
const UPLOAD_CONCURRENCY: usize = 4;
/// Deadline of one request (metadata, a PUT, one part of a multipart upload).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes per read from the local part while uploading.
const READ_CHUNK: usize = 1 << 20;

/// An S3 bucket (or a prefix of one), with the home's `blobs/` as the node-local cache.
#[derive(Clone)]
pub struct S3Store {
    s3: Arc<AmazonS3>,
    /// The same bucket without a whole-request timeout, for streamed reads.
    streaming: Arc<AmazonS3>,
    url: String,
    prefix: String,
    part_size: usize,
    cache: LocalStore,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store").field("url", &self.url).finish()
    }
}

fn remote(action: &'static str, key: &Key) -> impl FnOnce(object_store::Error) -> StoreError {
    let key = key.to_string();
    move |source| StoreError::Remote {
        action,
        key,
        source: Box::new(source),
    }
}

fn is_not_found(error: &object_store::Error) -> bool {
    matches!(error, object_store::Error::NotFound { .. })
}

impl S3Store {
    /// Connect to the bucket described by `settings` (no request is made yet), with `cache`
    /// as the node-local blob cache.
    pub fn open(settings: &S3Settings, cache: LocalStore) -> Result<Self, StoreError> {
        let url = if settings.prefix.is_empty() {
            format!("s3://{}", settings.bucket)
        } else {
            format!("s3://{}/{}", settings.bucket, settings.prefix)
        };
        let env_flag = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&settings.bucket);
        let endpoint = settings
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = settings
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
        {
            builder = builder.with_region(region);
        }
        let allow_http = settings
            .allow_http
            .or_else(|| env_flag("AWS_ALLOW_HTTP"))
            .unwrap_or_else(|| {
                endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://"))
            });
        if let Some(virtual_hosted) = settings.virtual_hosted {
            builder = builder.with_virtual_hosted_style_request(virtual_hosted);
        }
        if settings.upload_checksums {
            // Each PUT and part carries `x-amz-checksum-sha256`; the server refuses bytes that
            // changed on the way (the blob was verified before its upload began).
            builder = builder.with_checksum_algorithm(object_store::aws::Checksum::SHA256);
        }
        let options = object_store::ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(Duration::from_secs(5));
        let build = |options: object_store::ClientOptions| {
            builder
                .clone()
                .with_client_options(options)
                .build()
                .map_err(|source| StoreError::Remote {
                    action: "could not configure access to",
                    key: url.clone(),
                    source: Box::new(source),
                })
        };
        // Requests and part uploads get a deadline; bodies streamed to clients (paced by
        // them, possibly for long) get none: stalls there surface through TCP.
        let s3 = build(options.clone().with_timeout(REQUEST_TIMEOUT))?;
        let streaming = build(options.with_timeout_disabled())?;
        Ok(S3Store {
            s3: Arc::new(s3),
            streaming: Arc::new(streaming),
            url,
            prefix: settings.prefix.clone(),
            part_size: usize::try_from(settings.part_size).unwrap_or(usize::MAX),
            cache,
        })
    }

    fn key(&self, relative: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(relative)
        } else {
            Key::from(format!("{}/{relative}", self.prefix))
        }
    }

    fn blob_key(&self, sha256: &Sha256) -> Key {
        self.key(&format!("blobs/sha256/{}/{sha256}", &sha256[..2]))
    }

    fn meta_key(&self, key: &str) -> Result<Key, StoreError> {
        let clean = key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
        let first = key.split('/').next().unwrap_or_default();
        if !clean || !matches!(first, "manifests" | "refs") {
            return Err(StoreError::BadKey(key.to_owned()));
        }
        Ok(self.key(key))
    }

    /// The part of `key` after the store's prefix.
    fn relative<'k>(&self, key: &'k str) -> &'k str {
        if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&self.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(key)
        }
    }

    async fn head_size(&self, key: &Key) -> Result<Option<u64>, StoreError> {
        match self.s3.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(remote("could not look up", key)(e)),
        }
    }

    /// Stream the file at `part` to `key`: one PUT below a part's size, else multipart.
    async fn upload(&self, part: &Path, key: &Key, size: u64) -> Result<(), StoreError> {
        let mut file = tokio::fs::File::open(part)
            .await
            .map_err(|e| StoreError::io("could not open", part, e))?;
        if size < self.part_size as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes)
                .await
                .map_err(|e| StoreError::io("could not read", part, e))?;
            self.s3
                .put(key, PutPayload::from(bytes))
                .await
                .map_err(remote("could not upload", key))?;
            return Ok(());
        }
        let upload = self
            .s3
            .put_multipart(key)
            .await
            .map_err(remote("could not start uploading", key))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut buffer = vec![0u8; READ_CHUNK];
        let result: Result<(), StoreError> = async {
            loop {
                let n = file
                    .read(&mut buffer)
                    .await
                    .map_err(|e| StoreError::io("could not read", part, e))?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(UPLOAD_CONCURRENCY)
                    .await
                    .map_err(remote("could not upload a part of", key))?;
                writer.write(&buffer[..n]);
            }
        }
        .await;
        match result {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(remote("could not complete the upload of", key))?;
                Ok(())
            }
            Err(error) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(key = %key, error = %abort, "aborting a failed upload failed");
                }
                Err(error)
            }
        }
    }

    async fn download(&self, sha256: &Sha256) -> Result<PathBuf, StoreError> {
        let key = self.blob_key(sha256);
        let result = self.streaming.get(&key).await.map_err(|e| match e {
            e if is_not_found(&e) => StoreError::Missing(*sha256),
            e => remote("could not download", &key)(e),
        })?;
        let tmp = self.cache.tmp_dir().join(format!(
            "{sha256}.{}.{:x}.fetch",
            std::process::id(),
            rand::random::<u64>()
        ));
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| StoreError::io("could not create", &tmp, e))?;
        let mut stream = result.into_stream();
        let mut hasher = sha2::Sha256::new();
        let outcome: Result<(), StoreError> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(remote("could not download", &key))?;
                hasher.update(&chunk);
                out.write_all(&chunk)
                    .await
                    .map_err(|e| StoreError::io("could not write", &tmp, e))?;
            }
            out.sync_all()
                .await
                .map_err(|e| StoreError::io("could not sync", &tmp, e))
        }
        .await;
        if let Err(error) = outcome {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(error);
        }
        let actual = Sha256::from_bytes(&hasher.finalize().into());
        if actual != *sha256 {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StoreError::Corrupt {
                sha256: *sha256,
                actual: actual.to_string(),
            });
        }
        let cache = self.cache.clone();
        let sha = *sha256;
        tokio::task::spawn_blocking(move || cache.publish(&tmp, &sha))
            .await
            .map_err(|e| StoreError::Io {
                action: "cache task failed:",
                path: PathBuf::new(),
                source: std::io::Error::other(e.to_string()),
            })?
    }
}

impl BlobStore for S3Store {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn local_path(&self, sha256: &Sha256) -> Option<PathBuf> {
        BlobStore::local_path(&self.cache, sha256)
    }

    fn stat<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        async move {
            let key = self.blob_key(sha256);
            self.head_size(&key).await
        }
        .boxed()
    }

    fn publish<'a>(
        &'a self,
        part: &'a Path,
        sha256: &'a Sha256,
    ) -> BoxFuture<'a, Result<Option<PathBuf>, StoreError>> {
        async move {
            let key = self.blob_key(sha256);
            let size = tokio::fs::metadata(part)
                .await
                .map_err(|e| StoreError::io("could not read", part, e))?
                .len();
            if self.head_size(&key).await? != Some(size) {
                self.upload(part, &key, size).await?;
            }
            // Keep the verified bytes as this node's cached copy.
            let cache = self.cache.clone();
            let (part, sha) = (part.to_path_buf(), sha256.to_owned());
            let cached = tokio::task::spawn_blocking(move || cache.publish(&part, &sha))
                .await
                .map_err(|e| StoreError::Io {
                    action: "cache task failed:",
                    path: PathBuf::new(),
                    source: std::io::Error::other(e.to_string()),
                })??;
            Ok(Some(cached))
        }
        .boxed()
    }

    fn read<'a>(
        &'a self,
        sha256: &'a Sha256,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, StoreError>> {
        async move {
            let key = self.blob_key(sha256);
            if range.is_empty() {
                return Ok(futures::stream::empty().boxed());
            }
            let options = GetOptions {
                range: Some(GetRange::Bounded(range)),
                ..GetOptions::default()
            };
            let result = self.streaming.get_opts(&key, options).await.map_err(|e| {
                if is_not_found(&e) {
                    StoreError::Missing(*sha256)
                } else {
                    remote("could not read", &key)(e)
                }
            })?;
            let key = key.to_string();
            Ok(result
                .into_stream()
                .map_err(move |source| StoreError::Remote {
                    action: "could not read",
                    key: key.clone(),
                    source: Box::new(source),
                })
                .boxed())
        }
        .boxed()
    }

    fn fetch_local<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<PathBuf, StoreError>> {
        async move {
            match BlobStore::local_path(&self.cache, sha256) {
                Some(path) => Ok(path),
                None => self.download(sha256).await,
            }
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ListedBlob>, StoreError>> {
        async move {
            let prefix = self.key("blobs/sha256");
            let metas: Vec<_> = self
                .s3
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(remote("could not list", &prefix))?;
            Ok(metas
                .into_iter()
                .filter_map(|meta| {
                    let sha256 = Sha256::parse(meta.location.filename()?).ok()?;
                    Some(ListedBlob {
                        sha256,
                        size: meta.size,
                        modified: Some(meta.last_modified.timestamp()),
                    })
                })
                .collect())
        }
        .boxed()
    }

    fn quarantine<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<String, StoreError>> {
        async move {
            let key = self.blob_key(sha256);
            let dest = self.key(&format!("quarantine/{sha256}.{}", crate::now_unix()));
            self.s3
                .copy(&key, &dest)
                .await
                .map_err(remote("could not quarantine", &key))?;
            self.s3
                .delete(&key)
                .await
                .map_err(remote("could not delete", &key))?;
            Ok(format!("s3://{}/{dest}", self.bucket()))
        }
        .boxed()
    }

    fn remove<'a>(&'a self, sha256: &'a Sha256) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let key = self.blob_key(sha256);
            match self.s3.delete(&key).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(remote("could not delete", &key)(e)),
            }
        }
        .boxed()
    }

    fn presign<'a>(
        &'a self,
        sha256: &'a Sha256,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<url::Url>, StoreError>> {
        async move {
            let key = self.blob_key(sha256);
            let url = self
                .s3
                .signed_url(http::Method::GET, &key, ttl)
                .await
                .map_err(remote("could not presign", &key))?;
            Ok(Some(url))
        }
        .boxed()
    }

    fn put_meta<'a>(&'a self, key: &'a str, bytes: Bytes) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let key = self.meta_key(key)?;
            self.s3
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(remote("could not write", &key))?;
            Ok(())
        }
        .boxed()
    }

    fn get_meta<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>> {
        async move {
            let key = self.meta_key(key)?;
            let result = match self.s3.get(&key).await {
                Ok(result) => result,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(remote("could not read", &key)(e)),
            };
            let bytes = result
                .bytes()
                .await
                .map_err(remote("could not read", &key))?;
            Ok(Some(bytes))
        }
        .boxed()
    }

    fn list_meta<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        async move {
            let prefix_key = self.meta_key(prefix)?;
            let metas: Vec<_> = self
                .s3
                .list(Some(&prefix_key))
                .try_collect()
                .await
                .map_err(remote("could not list", &prefix_key))?;
            let mut keys: Vec<String> = metas
                .iter()
                .map(|m| self.relative(m.location.as_ref()).to_owned())
                .collect();
            keys.sort();
            Ok(keys)
        }
        .boxed()
    }
}

impl S3Store {
    fn bucket(&self) -> &str {
        self.url
            .strip_prefix("s3://")
            .and_then(|u| u.split('/').next())
            .unwrap_or_default()
    }
}
