-- 0007: what the mirror needs to serve Xet.
--
-- * `xet_files_by_hash`: a reconstruction names a file by its Xet hash; the mirror finds the
--   blob holding it through this index (~40 bytes per held blob).
-- * `xet_listed`: the Xet hash the upstream listed (tree `xetHash`) for content the store does
--   not hold yet, by sha256, so that the mirror can advertise Xet for a file before it has
--   fetched it and answer its reconstruction once it has. A Xet hash is a function of the
--   content, so a row stays true forever; once the blob is held its own `xet_files` row (computed
--   from the bytes) is authoritative and must agree. Rows are small (two hex keys, ~150 bytes
--   with the index) and few (one per listed LFS file); they are facts about content and kept.
CREATE INDEX xet_files_by_hash ON xet_files (xet_hash);

CREATE TABLE xet_listed (
    sha256      TEXT NOT NULL PRIMARY KEY CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    xet_hash    TEXT NOT NULL CHECK (length(xet_hash) = 64 AND xet_hash NOT GLOB '*[^0-9a-f]*')
) STRICT, WITHOUT ROWID;

CREATE INDEX xet_listed_by_hash ON xet_listed (xet_hash);
