-- 0005: the chunk index. For each blob the store holds, its Xet chunking (xet.md §4): the Xet
-- file hash and the chunk list, so `larder verify` can check the Xet hash and a Xet pull can
-- reuse chunks of blobs already held. Sized for 100k blobs and 10 TB (≈ 160M chunks):
--
-- * `xet_files`: one row per blob. `chunks` packs the chunk list, 36 bytes a chunk in file
--   order: the chunk hash (32 bytes, its four 64-bit words little-endian) then its length
--   (u32 little-endian). Offsets are the running sum of lengths. The row goes with its blob
--   (ON DELETE CASCADE); `id` is the short key the lookup rows use and is never reused.
-- * `xet_chunks`: chunk hash -> (file, chunk index) for delta reuse, keyed on the first four
--   bytes of the hash only (as a signed 32-bit integer: 4 bytes on disk). A hit is a candidate
--   that the reader confirms against the full hash in `xet_files.chunks`; each distinct chunk
--   of a file is listed once. Rows are removed with their blob by the registry's own delete
--   (no foreign key: a cascade would need a second index on `file`).
--
-- Blobs stored before this migration have no row until `larder verify` (or the next pull that
-- needs it) computes one.

CREATE TABLE xet_files (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256      TEXT    NOT NULL UNIQUE REFERENCES blobs (sha256) ON DELETE CASCADE,
    xet_hash    TEXT    NOT NULL CHECK (length(xet_hash) = 64 AND xet_hash NOT GLOB '*[^0-9a-f]*'),
    chunk_count INTEGER NOT NULL CHECK (chunk_count >= 0),
    chunks      BLOB    NOT NULL CHECK (length(chunks) = 36 * chunk_count)
) STRICT;

CREATE TABLE xet_chunks (
    prefix      INTEGER NOT NULL,
    file        INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    PRIMARY KEY (prefix, file, idx)
) STRICT, WITHOUT ROWID;
