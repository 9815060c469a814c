-- Shōmei registry, PostgreSQL schema v3: relying parties (linkage lookups).
--
-- A relying party (a bank, an online service…) registered by the operator
-- may ask the authority about certificates it was shown
-- (GET /v1/linkage/{serial}): status, successor, the holder's current
-- certificates and a per-relying-party pseudonym of the holder. It reaches the
-- authority with a bearer token, of which only the SHA-256 is kept.

CREATE TABLE relying_parties (
    id          TEXT        NOT NULL PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    name        TEXT        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    token_hash  BYTEA       NOT NULL UNIQUE CHECK (length(token_hash) = 32),  -- SHA-256
    created_at  TIMESTAMPTZ NOT NULL
);

-- A certificate is replaced at most once: successors form a chain, which
-- linkage lookups follow (and this index serves).
CREATE UNIQUE INDEX certificates_replaces ON certificates (replaces_serial);

-- Relying parties become actors of the audit trail ("used" events from
-- linkage lookups).
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_actor_kind_check;
ALTER TABLE events ADD CONSTRAINT events_actor_kind
    CHECK (actor_kind IN ('operator', 'holder', 'system', 'relying_party'));
