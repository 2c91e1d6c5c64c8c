-- 0001: the whole initial schema (docs/architecture.md, "Registry schema").
--
-- Conventions:
--   * times are unix seconds (INTEGER);
--   * digests are lowercase hex: git commit / blob ids 40 chars, sha256 64 chars;
--   * tables are STRICT so a wrongly typed value is an error, not a silent coercion;
--   * rows owned by a repo or a commit go away with it (ON DELETE CASCADE).
-- Applied in one transaction by migrate.rs, which then sets PRAGMA user_version = 1.

CREATE TABLE repos (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('model', 'dataset')),
    name        TEXT    NOT NULL CHECK (length(name) > 0),    -- 'org/name' (or 'name')
    upstream    TEXT    NOT NULL,                             -- endpoint URL it came from
    gated       TEXT    CHECK (gated IN ('auto', 'manual')),  -- NULL: not gated
    private     INTEGER NOT NULL CHECK (private IN (0, 1)),
    first_seen  INTEGER NOT NULL,
    UNIQUE (kind, name)
) STRICT;

-- One row per commit held (pulled at least once).
CREATE TABLE commits (
    id          INTEGER PRIMARY KEY,
    repo_id     INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    sha         TEXT    NOT NULL CHECK (length(sha) = 40 AND sha NOT GLOB '*[^0-9a-f]*'),
    fetched_at  INTEGER NOT NULL,                             -- the latest pull of this commit
    card_json   TEXT,                                         -- the repo info's cardData
    UNIQUE (repo_id, sha)
) STRICT;
CREATE INDEX commits_sha ON commits (sha);

-- Version history: where each ref pointed, and when. A new row only when the ref moves to a
-- different sha than its latest row (highest id); otherwise last_seen moves forward.
-- `sha` is deliberately not a foreign key: history may outlive (or precede) a held commit.
CREATE TABLE ref_observations (
    id          INTEGER PRIMARY KEY,
    repo_id     INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    ref         TEXT    NOT NULL CHECK (length(ref) > 0),
    sha         TEXT    NOT NULL CHECK (length(sha) = 40 AND sha NOT GLOB '*[^0-9a-f]*'),
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
) STRICT;
CREATE INDEX ref_observations_latest ON ref_observations (repo_id, ref, id);
CREATE INDEX ref_observations_sha ON ref_observations (repo_id, sha);

-- A commit's complete tree. `sha256` is the content digest when known (always for LFS files,
-- for regular files once downloaded and hashed). A file is *held* when its sha256 is known and
-- a `blobs` row exists for it; that is derived at query time, never stored.
CREATE TABLE files (
    commit_id   INTEGER NOT NULL REFERENCES commits (id) ON DELETE CASCADE,
    path        TEXT    NOT NULL CHECK (length(path) > 0),
    size        INTEGER NOT NULL CHECK (size >= 0),
    git_oid     TEXT    NOT NULL CHECK (length(git_oid) = 40 AND git_oid NOT GLOB '*[^0-9a-f]*'),
    sha256      TEXT    CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    lfs         INTEGER NOT NULL CHECK (lfs IN (0, 1)),
    PRIMARY KEY (commit_id, path)
) STRICT, WITHOUT ROWID;
CREATE INDEX files_sha256 ON files (sha256);
CREATE INDEX files_git_oid ON files (git_oid);

-- What the store holds. Not referenced by foreign keys: files may name content not held.
CREATE TABLE blobs (
    sha256      TEXT    PRIMARY KEY CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    size        INTEGER NOT NULL CHECK (size >= 0),
    stored_at   INTEGER NOT NULL,
    verified_at INTEGER,
    location    TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

-- Evidence about a commit's licence. source: 'card' (detail = the card field: license,
-- license_name, license_link, gated), 'tag', 'licence_file', 'base_model', ...
CREATE TABLE licence_signals (
    id          INTEGER PRIMARY KEY,
    commit_id   INTEGER NOT NULL REFERENCES commits (id) ON DELETE CASCADE,
    source      TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    detail      TEXT
) STRICT;
CREATE INDEX licence_signals_commit ON licence_signals (commit_id, source);

CREATE TABLE licence_resolutions (
    commit_id      INTEGER PRIMARY KEY REFERENCES commits (id) ON DELETE CASCADE,
    licence_key    TEXT    NOT NULL,                          -- a key of licences.toml
    confidence     TEXT    NOT NULL,
    conflicts_json TEXT,
    resolved_at    INTEGER
) STRICT;

-- Provenance of converted artefacts. Deleting a source commit that something was derived from
-- is refused (no cascade): the derived repo's licence depends on it.
CREATE TABLE derivations (
    id                INTEGER PRIMARY KEY,
    derived_commit_id INTEGER NOT NULL REFERENCES commits (id) ON DELETE CASCADE,
    source_commit_id  INTEGER NOT NULL REFERENCES commits (id),
    tool              TEXT    NOT NULL,
    params_json       TEXT    NOT NULL,
    tool_version      TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    UNIQUE (derived_commit_id, source_commit_id)
) STRICT;
CREATE INDEX derivations_source ON derivations (source_commit_id);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL,
    spec_json     TEXT    NOT NULL,
    state         TEXT    NOT NULL,                           -- e.g. queued, running, done, failed
    progress_json TEXT,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX jobs_state ON jobs (state, created_at);

-- Commits that garbage collection must keep.
CREATE TABLE pins (
    repo_id     INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    sha         TEXT    NOT NULL CHECK (length(sha) = 40 AND sha NOT GLOB '*[^0-9a-f]*'),
    PRIMARY KEY (repo_id, sha)
) STRICT, WITHOUT ROWID;

-- Refs refreshed on a schedule. `every` is in seconds.
CREATE TABLE tracked (
    repo_id      INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    ref          TEXT    NOT NULL,
    every        INTEGER NOT NULL CHECK (every > 0),
    last_checked INTEGER,
    webhook      TEXT,
    PRIMARY KEY (repo_id, ref)
) STRICT, WITHOUT ROWID;

-- Accepted licences, denials, imports. `repo` is text ('model:org/name') so entries outlive
-- the repo they mention.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    repo        TEXT,
    detail_json TEXT
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);
