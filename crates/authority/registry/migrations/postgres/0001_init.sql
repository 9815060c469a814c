-- Shōmei registry, PostgreSQL schema v1.
--
-- Timestamps are TIMESTAMPTZ (microsecond precision).
-- Serials are upper-case hexadecimal without leading zero octets.
-- Integers are BIGINT throughout so one Rust type (i64) reads them all.

CREATE TABLE holders (
    id          TEXT        NOT NULL PRIMARY KEY,
    name        TEXT        NOT NULL,
    address     TEXT        NOT NULL,
    birth_date  TEXT        NOT NULL,                   -- ISO 8601 date
    sex         BIGINT      NOT NULL CHECK (sex IN (1, 2, 3)),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE cards (
    id          TEXT        NOT NULL PRIMARY KEY,
    holder_id   TEXT        NOT NULL REFERENCES holders (id),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX cards_holder ON cards (holder_id);

CREATE TABLE devices (
    id          TEXT        NOT NULL PRIMARY KEY,
    holder_id   TEXT        NOT NULL REFERENCES holders (id),
    kind        TEXT        NOT NULL,
    status      TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    wiped_at    TIMESTAMPTZ
);
CREATE INDEX devices_holder ON devices (holder_id);

CREATE TABLE certificates (
    serial             TEXT        NOT NULL PRIMARY KEY
                       CHECK (length(serial) BETWEEN 2 AND 40 AND serial = upper(serial)),
    class              TEXT        NOT NULL
                       CHECK (class IN ('card-sign', 'card-auth', 'phone-sign', 'phone-auth')),
    holder_id          TEXT        NOT NULL REFERENCES holders (id),
    card_id            TEXT        REFERENCES cards (id),
    device_id          TEXT        REFERENCES devices (id),
    status             TEXT        NOT NULL
                       CHECK (status IN ('active', 'suspended', 'revoked', 'expired')),
    reason             BIGINT      CHECK (reason IN (0, 1, 2, 3, 4, 5, 9)),  -- RFC 5280 CRLReason
    status_changed_at  TIMESTAMPTZ,
    not_before         TIMESTAMPTZ NOT NULL,
    not_after          TIMESTAMPTZ NOT NULL,
    shard              BIGINT      NOT NULL CHECK (shard >= 0),
    parent_serial      TEXT        REFERENCES certificates (serial),  -- derived from
    pair_serial        TEXT        REFERENCES certificates (serial),  -- sign <-> auth
    replaces_serial    TEXT        REFERENCES certificates (serial),  -- renewal: new -> old
    der                BYTEA       NOT NULL,
    issued_at          TIMESTAMPTZ NOT NULL,
    CHECK ((status = 'revoked') = (reason IS NOT NULL)),
    CHECK (status NOT IN ('revoked', 'suspended') OR status_changed_at IS NOT NULL)
);
CREATE INDEX certificates_crl ON certificates (class, shard, status);
CREATE INDEX certificates_holder ON certificates (holder_id);
CREATE INDEX certificates_parent ON certificates (parent_serial);

-- Audit trail. Never holds personal data (basic four, PINs).
CREATE TABLE events (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor_kind  TEXT        NOT NULL CHECK (actor_kind IN ('operator', 'holder', 'system')),
    actor_id    TEXT,
    action      TEXT        NOT NULL,
    holder_id   TEXT,           -- no foreign key: the trail outlives and predates rows
    serial      TEXT,
    detail      TEXT        NOT NULL  -- JSON
);
CREATE INDEX events_holder ON events (holder_id, id);
CREATE INDEX events_serial ON events (serial, id);

CREATE TABLE crl_numbers (
    class   TEXT   NOT NULL,
    shard   BIGINT NOT NULL,
    number  BIGINT NOT NULL CHECK (number > 0),
    PRIMARY KEY (class, shard)
);
