//! Blob response bodies: how they are read from the store and streamed to clients.

/// Bytes per read when streaming a blob (from the store, or from a part still being fetched).
pub const READ_CHUNK: usize = 256 << 10;
