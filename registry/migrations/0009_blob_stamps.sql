-- 0009: what a blob's file looked like on disk when this node last hashed it.
--
-- blob_stamps: the file's size, device, inode, mtime and ctime (nanoseconds) when its bytes
-- were last found to match its digest (at publication, by `larder verify`, the mirror's
-- first serve or its scrub). The mirror serves a blob straight from disk while the file still
-- matches its stamp; any write, replacement, chmod or new hard link changes the ctime, so a
-- file touched since is hashed again before its bytes leave. Bit rot leaves the stamp alone:
-- the scrub is what finds it.
CREATE TABLE blob_stamps (
    sha256      TEXT    PRIMARY KEY REFERENCES blobs (sha256) ON DELETE CASCADE,
    stamp       TEXT    NOT NULL CHECK (length(stamp) > 0)
) STRICT, WITHOUT ROWID;
