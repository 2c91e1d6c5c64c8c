-- 0004: why a failed job failed, as a short machine-readable kind (e.g. `licence_denied`,
-- `disk_full`) beside the human-readable `error`. The daemon owns the vocabulary; the registry
-- only stores it. Jobs that ended before this migration keep NULL (read as unknown).

ALTER TABLE jobs ADD COLUMN error_kind TEXT;
