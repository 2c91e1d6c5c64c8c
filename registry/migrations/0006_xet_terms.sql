-- 0006: Xet terms held. Each row says that chunks [chunk_start, chunk_end) of xorb `xorb`
-- are the bytes of blob `blob` from `offset`, with these chunk lengths (`lengths`: one u32 LE
-- per chunk). Learnt from the reconstructions of Xet pulls; a later pull copies a term it finds
-- here from the blob instead of fetching it (the delta rule, docs/design.md). One row per term,
-- not per chunk: about 4 bytes per 64 KiB chunk, so ~64 MB per TB held. Rows of blobs that are
-- gone are harmless (the lookup checks the blob) and dropped with the blob.

CREATE TABLE xet_terms (
    xorb        BLOB    NOT NULL CHECK (length(xorb) = 32),
    chunk_start INTEGER NOT NULL CHECK (chunk_start >= 0),
    chunk_end   INTEGER NOT NULL CHECK (chunk_end > chunk_start),
    blob        TEXT    NOT NULL CHECK (length(blob) = 64 AND blob NOT GLOB '*[^0-9a-f]*'),
    offset      INTEGER NOT NULL CHECK (offset >= 0),
    lengths     BLOB    NOT NULL CHECK (length(lengths) = 4 * (chunk_end - chunk_start)),
    PRIMARY KEY (xorb, chunk_start, chunk_end, blob)
) STRICT, WITHOUT ROWID;

CREATE INDEX xet_terms_blob ON xet_terms (blob);
