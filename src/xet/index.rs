//! The store's chunk index: [`XetChunking`]s recorded in the registry (`xet_files`,
//! `xet_chunks`) and read back, and the on-demand computation for blobs stored before Larder
//! kept one.

use crate::Larder;
use crate::registry::{Registry, RegistryError, Sha256, XetChunk, XetRecord};
use crate::store::StoreError;

use super::chunking::{ChunkEntry, XetChunking, hash_file, hash_from_bytes, hash_to_bytes};

/// Why a blob's chunking could not be read or computed.
#[derive(Debug, thiserror::Error)]
pub enum XetIndexError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob's file could not be read.
    #[error("could not read blob {sha256} to compute its Xet chunking")]
    Read {
        /// The blob.
        sha256: Sha256,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The recorded chunking does not describe a blob of the recorded size.
    #[error("the recorded Xet chunking of blob {sha256} is damaged")]
    Damaged {
        /// The blob.
        sha256: Sha256,
    },
}

/// The registry's record of `chunking` for blob `sha256`.
pub fn to_record(sha256: &Sha256, chunking: &XetChunking) -> XetRecord {
    XetRecord {
        sha256: sha256.to_owned(),
        xet_hash: chunking.hex(),
        chunks: chunking
            .chunks
            .iter()
            .map(|c| XetChunk {
                hash: hash_to_bytes(&c.hash),
                length: c.length,
            })
            .collect(),
    }
}

/// The chunking a registry record describes; `None` if its Xet hash is not hex.
pub fn from_record(record: &XetRecord) -> Option<XetChunking> {
    Some(XetChunking {
        file_hash: super::parse_hash(&record.xet_hash).ok()?,
        chunks: record
            .chunks
            .iter()
            .map(|c| ChunkEntry {
                hash: hash_from_bytes(&c.hash),
                length: c.length,
            })
            .collect(),
    })
}

/// Record the chunking of a blob just recorded in the registry (blob row first, then this).
pub async fn record(
    registry: &Registry,
    sha256: &Sha256,
    chunking: &XetChunking,
) -> Result<(), RegistryError> {
    registry.record_xet(to_record(sha256, chunking)).await
}

/// A held blob's chunking: the recorded one, or, for a blob stored before the chunk index
/// existed (or whose record is damaged), computed now from the blob's bytes (one read) and
/// recorded. The blob must be recorded in the registry.
pub async fn chunking_of(larder: &Larder, sha256: &Sha256) -> Result<XetChunking, XetIndexError> {
    let recorded = match larder.registry.xet(sha256).await {
        Ok(found) => found,
        Err(RegistryError::CorruptXetIndex { .. }) => None,
        Err(other) => return Err(other.into()),
    };
    let size = larder.blobs.stat(sha256).await?;
    if let Some(chunking) = recorded.as_ref().and_then(from_record)
        && Some(chunking.size()) == size
    {
        return Ok(chunking);
    }
    let path = larder.blobs.fetch_local(sha256).await?;
    let chunking = tokio::task::spawn_blocking(move || hash_file(&path))
        .await
        .map_err(|join| XetIndexError::Read {
            sha256: sha256.to_owned(),
            source: std::io::Error::other(join.to_string()),
        })?
        .map_err(|source| XetIndexError::Read {
            sha256: sha256.to_owned(),
            source,
        })?;
    if Some(chunking.size()) != size {
        return Err(XetIndexError::Damaged {
            sha256: sha256.to_owned(),
        });
    }
    record(&larder.registry, sha256, &chunking).await?;
    Ok(chunking)
}
