-- Shōmei registry, SQLite schema v3: relying parties (linkage lookups).
--
-- A relying party (a bank, an online service…) registered by the operator
-- may ask the authority about certificates it was shown
-- (GET /v1/linkage/{serial}): status, successor, the holder's current
-- certificates and a per-relying-party pseudonym of the holder. It reaches the
-- authority with a bearer token, of which only the SHA-256 is kept.

CREATE TABLE relying_parties (
    id          TEXT NOT NULL PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    name        TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    token_hash  BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),  -- SHA-256
    created_at  TEXT NOT NULL
) STRICT;

-- A certificate is replaced at most once: successors form a chain, which
-- linkage lookups follow (and this index serves).
CREATE UNIQUE INDEX certificates_replaces ON certificates (replaces_serial);

-- Relying parties become actors of the audit trail ("used" events from
-- linkage lookups). SQLite cannot change a CHECK, so `events` is rebuilt;
-- ids are copied, so event cursors (phone sync, streams) stay valid and
-- AUTOINCREMENT continues after the largest.
CREATE TABLE events_v3 (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL,
    actor_kind  TEXT    NOT NULL
                CHECK (actor_kind IN ('operator', 'holder', 'system', 'relying_party')),
    actor_id    TEXT,
    action      TEXT    NOT NULL,
    holder_id   TEXT,           -- no foreign key: the trail outlives and predates rows
    serial      TEXT,
    detail      TEXT    NOT NULL  -- JSON
) STRICT;

INSERT INTO events_v3 (id, at, actor_kind, actor_id, action, holder_id, serial, detail)
SELECT id, at, actor_kind, actor_id, action, holder_id, serial, detail FROM events ORDER BY id;

DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE INDEX events_holder ON events (holder_id, id);
CREATE INDEX events_serial ON events (serial, id);
