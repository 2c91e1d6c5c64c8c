//! Store URLs: where blobs live (`--store URL`, `[store] url` in `config.toml`).
//!
//! - none: the home directory (`blobs/` under `LARDER_HOME`);
//! - `file:///path`: a directory, e.g. a shared filesystem;
//! - `s3://bucket/prefix`: an S3-compatible bucket; endpoint, region and credentials come from
//!   `[store]` keys, else the standard `AWS_*` environment variables.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[store]` table of `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `file:///dir` or `s3://bucket/prefix`; absent means the home directory.
    pub url: Option<String>,
    /// S3 endpoint, e.g. `http://127.0.0.1:9000` for MinIO (default: AWS, or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// S3 region (default: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Allow a plain-HTTP endpoint (loopback test servers, a private network).
    pub allow_http: Option<bool>,
    /// Address buckets as `bucket.host` instead of `host/bucket`.
    pub virtual_hosted: Option<bool>,
    /// Blobs larger than this are uploaded in parts of this size (bytes, minimum 5 MiB).
    pub part_size: Option<u64>,
    /// Send a SHA-256 checksum with every upload (and part), which the server checks before it
    /// accepts the bytes (default true; turn off only for a server that rejects the headers).
    pub upload_checksums: Option<bool>,
}

/// Settings of an S3 store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// Explicit endpoint.
    pub endpoint: Option<String>,
    /// Explicit region.
    pub region: Option<String>,
    /// Whether plain HTTP is allowed.
    pub allow_http: Option<bool>,
    /// Virtual-hosted-style addressing.
    pub virtual_hosted: Option<bool>,
    /// Multipart part size in bytes.
    pub part_size: u64,
    /// Whether uploads carry SHA-256 checksums for the server to check.
    pub upload_checksums: bool,
}

/// The default multipart part size.
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// S3's minimum part size (all parts but the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// Where the blobs are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreLocation {
    /// The home directory.
    #[default]
    Home,
    /// Another directory.
    Dir(PathBuf),
    /// A bucket.
    S3(S3Settings),
}

/// A store URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("bad store URL `{url}`: {why}")]
pub struct LocationError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub why: String,
}

impl StoreLocation {
    /// Resolve the `--store` flag (wins) and the `[store]` table.
    pub fn resolve(flag: Option<&str>, config: &StoreConfig) -> Result<Self, LocationError> {
        let Some(url) = flag.or(config.url.as_deref()).filter(|u| !u.is_empty()) else {
            return Ok(StoreLocation::Home);
        };
        let bad = |why: &str| LocationError {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| bad("not an absolute local path"))?;
                Ok(StoreLocation::Dir(path))
            }
            "s3" => {
                let bucket = parsed.host_str().unwrap_or_default().to_owned();
                if bucket.is_empty() {
                    return Err(bad("no bucket name (s3://BUCKET/prefix)"));
                }
                if parsed.query().is_some() || parsed.fragment().is_some() {
                    return Err(bad("no query or fragment allowed"));
                }
                let prefix = parsed.path().trim_matches('/').to_owned();
                // Checked on the text as given: URL parsing already folded dot segments away.
                if url.split('/').any(|s| s == "." || s == "..") {
                    return Err(bad("`.` and `..` are not allowed in the prefix"));
                }
                let part_size = config.part_size.unwrap_or(DEFAULT_PART_SIZE);
                if part_size < MIN_PART_SIZE {
                    return Err(bad("[store] part_size must be at least 5 MiB (5242880)"));
                }
                Ok(StoreLocation::S3(S3Settings {
                    bucket,
                    prefix,
                    endpoint: config.endpoint.clone(),
                    region: config.region.clone(),
                    allow_http: config.allow_http,
                    virtual_hosted: config.virtual_hosted,
                    part_size,
                    upload_checksums: config.upload_checksums.unwrap_or(true),
                }))
            }
            other => Err(bad(&format!(
                "unsupported scheme `{other}` (use file:// or s3://)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = StoreConfig::default();
        assert_eq!(
            StoreLocation::resolve(None, &c).unwrap(),
            StoreLocation::Home
        );
        assert_eq!(
            StoreLocation::resolve(Some("file:///srv/larder"), &c).unwrap(),
            StoreLocation::Dir("/srv/larder".into())
        );
        let StoreLocation::S3(s) = StoreLocation::resolve(Some("s3://b/x/y/"), &c).unwrap() else {
            panic!("not s3");
        };
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("b", "x/y"));
        for bad in [
            "s3:///x",
            "ftp://h/x",
            "s3://b/../x",
            "relative/path",
            "s3://b/x?y=1",
        ] {
            assert!(StoreLocation::resolve(Some(bad), &c).is_err(), "{bad}");
        }
        let small = StoreConfig {
            part_size: Some(1024),
            ..StoreConfig::default()
        };
        assert!(StoreLocation::resolve(Some("s3://b"), &small).is_err());
    }
}
