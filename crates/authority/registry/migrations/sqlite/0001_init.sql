-- Shōmei registry, SQLite schema v1.
--
-- Timestamps are UTC text, fixed width, microsecond precision
-- ('2026-11-21T09:00:00.000000Z'), so text order is time order.
-- Serials are upper-case hexadecimal without leading zero octets.
-- Tables are STRICT: SQLite checks column types like other databases do.

CREATE TABLE holders (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    address     TEXT    NOT NULL,
    birth_date  TEXT    NOT NULL,                       -- ISO 8601 date
    sex         INTEGER NOT NULL CHECK (sex IN (1, 2, 3)),
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
) STRICT;

CREATE TABLE cards (
    id          TEXT NOT NULL PRIMARY KEY,
    holder_id   TEXT NOT NULL REFERENCES holders (id),
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX cards_holder ON cards (holder_id);

CREATE TABLE devices (
    id          TEXT NOT NULL PRIMARY KEY,
    holder_id   TEXT NOT NULL REFERENCES holders (id),
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    wiped_at    TEXT
) STRICT;
CREATE INDEX devices_holder ON devices (holder_id);

CREATE TABLE certificates (
    serial             TEXT    NOT NULL PRIMARY KEY
                       CHECK (length(serial) BETWEEN 2 AND 40 AND serial = upper(serial)),
    class              TEXT    NOT NULL
                       CHECK (class IN ('card-sign', 'card-auth', 'phone-sign', 'phone-auth')),
    holder_id          TEXT    NOT NULL REFERENCES holders (id),
    card_id            TEXT    REFERENCES cards (id),
    device_id          TEXT    REFERENCES devices (id),
    status             TEXT    NOT NULL
                       CHECK (status IN ('active', 'suspended', 'revoked', 'expired')),
    reason             INTEGER CHECK (reason IN (0, 1, 2, 3, 4, 5, 9)),  -- RFC 5280 CRLReason
    status_changed_at  TEXT,
    not_before         TEXT    NOT NULL,
    not_after          TEXT    NOT NULL,
    shard              INTEGER NOT NULL CHECK (shard >= 0),
    parent_serial      TEXT    REFERENCES certificates (serial),  -- derived from
    pair_serial        TEXT    REFERENCES certificates (serial),  -- sign <-> auth
    replaces_serial    TEXT    REFERENCES certificates (serial),  -- renewal: new -> old
    der                BLOB    NOT NULL,
    issued_at          TEXT    NOT NULL,
    CHECK ((status = 'revoked') = (reason IS NOT NULL)),
    CHECK (status NOT IN ('revoked', 'suspended') OR status_changed_at IS NOT NULL)
) STRICT;
CREATE INDEX certificates_crl ON certificates (class, shard, status);
CREATE INDEX certificates_holder ON certificates (holder_id);
CREATE INDEX certificates_parent ON certificates (parent_serial);

-- Audit trail. Never holds personal data (basic four, PINs).
CREATE TABLE events (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL,
    actor_kind  TEXT    NOT NULL CHECK (actor_kind IN ('operator', 'holder', 'system')),
    actor_id    TEXT,
    action      TEXT    NOT NULL,
    holder_id   TEXT,           -- no foreign key: the trail outlives and predates rows
    serial      TEXT,
    detail      TEXT    NOT NULL  -- JSON
) STRICT;
CREATE INDEX events_holder ON events (holder_id, id);
CREATE INDEX events_serial ON events (serial, id);

CREATE TABLE crl_numbers (
    class   TEXT    NOT NULL,
    shard   INTEGER NOT NULL,
    number  INTEGER NOT NULL CHECK (number > 0),
    PRIMARY KEY (class, shard)
) STRICT;
