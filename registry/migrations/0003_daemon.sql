-- 0003: what the daemon keeps besides jobs.
--
-- * `tracked` is replaced: a tracked ref names its repo by kind and name (not a `repos` row), so
--   a repo can be tracked before anything of it is held. `upstream_commit` is where the ref
--   pointed upstream at the last check; the repo is *behind* while the ref held locally points
--   elsewhere. `pending_job` is the pull submitted for `upstream_commit`, `base_commit` the
--   commit held before it (the "old" side of the change event).
-- * `commits.last_served`: when the mirror last served a file or metadata of this commit (unix
--   seconds, written in batches); quota eviction removes the least recently served first.

DROP TABLE tracked;
CREATE TABLE tracked (
    kind            TEXT    NOT NULL CHECK (kind IN ('model', 'dataset')),
    name            TEXT    NOT NULL CHECK (length(name) > 0),
    ref             TEXT    NOT NULL CHECK (length(ref) > 0),
    every           INTEGER NOT NULL CHECK (every > 0),
    added_at        INTEGER NOT NULL,
    last_checked    INTEGER,
    upstream_commit TEXT    CHECK (length(upstream_commit) = 40),
    base_commit     TEXT    CHECK (length(base_commit) = 40),
    pending_job     INTEGER,
    last_error      TEXT,
    PRIMARY KEY (kind, name, ref)
) STRICT, WITHOUT ROWID;

ALTER TABLE commits ADD COLUMN last_served INTEGER;
