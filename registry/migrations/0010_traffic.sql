-- 0010: what the mirror's cache saved, over time.
--
-- traffic: the mirror's cumulative file bytes served to clients and bytes fetched from the
-- upstream, sampled every minute, carried across restarts (a restarted mirror adds its new
-- counters to the last row). Rows older than the kept history are pruned as new ones land.
CREATE TABLE traffic (
    at          INTEGER PRIMARY KEY,
    served      INTEGER NOT NULL CHECK (served >= 0),
    fetched     INTEGER NOT NULL CHECK (fetched >= 0)
) STRICT;
