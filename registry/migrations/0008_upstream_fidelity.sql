-- 0007: what the upstream says of a repo beyond its files.
--
-- repo_aliases: names the upstream redirects to a repo (it was renamed, or the name differs in
-- case). A pull or lookup under the old name records the repo under the name it redirected to
-- and the old one here; Larder answers the old name as the Hub does (a redirect to the new one).
-- A repo that is pulled under a name directly (no redirect) drops that name's alias.
CREATE TABLE repo_aliases (
    kind        TEXT    NOT NULL CHECK (kind IN ('model', 'dataset')),
    name        TEXT    NOT NULL CHECK (length(name) > 0),    -- the old name
    repo_id     INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    seen_at     INTEGER NOT NULL,                             -- when the upstream last said so
    PRIMARY KEY (kind, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX repo_aliases_repo ON repo_aliases (repo_id);

-- upstream_info: the upstream's model/dataset info JSON of one commit as it was fetched, minus
-- `siblings` (bounded in size by the client: at most 1 MiB), served back by the mirror with what
-- it owns overlaid.
CREATE TABLE upstream_info (
    commit_id   INTEGER PRIMARY KEY REFERENCES commits (id) ON DELETE CASCADE,
    info_json   TEXT    NOT NULL CHECK (json_valid(info_json) AND length(info_json) <= 1048576),
    fetched_at  INTEGER NOT NULL
) STRICT;

-- upstream_path_info: the fields the upstream adds to a tree or paths-info entry when asked with
-- `expand=true` (`lastCommit`, `securityFileStatus`), per commit and path, as a JSON object
-- (`{}` when it added none), so the mirror answers `expand=true` offline too.
CREATE TABLE upstream_path_info (
    commit_id   INTEGER NOT NULL REFERENCES commits (id) ON DELETE CASCADE,
    path        TEXT    NOT NULL CHECK (length(path) > 0),
    expand_json TEXT    NOT NULL CHECK (json_valid(expand_json) AND length(expand_json) <= 65536),
    PRIMARY KEY (commit_id, path)
) STRICT, WITHOUT ROWID;
