-- Shōmei registry, SQLite schema v2: phones (device tokens, remote wipe) and
-- holder notification contacts.
--
-- devices.status, a phone's life at the authority:
--
--   active ──(a newer phone is provisioned)──▶ superseded ──┐
--     │ ────(reported lost: remote wipe)─────▶ lost ────────┤ (phone confirms)
--     └─────(remote wipe / self-retire)──────▶ wipe_pending ┴──────────────▶ wiped
--
--   active        the holder's current phone; at most one per holder.
--   superseded    replaced by a newer phone; its certificates were revoked
--                 (superseded) and a wipe queued, in the same transaction.
--   lost          reported lost or stolen; certificates revoked, wipe queued.
--   wipe_pending  a remote wipe was asked for (operator, holder by card proof,
--                 or the phone retiring itself before sale).
--   wiped         the phone confirmed it erased its credentials. Final.
--
-- A wipe is queued exactly when the phone is no longer active
-- (wipe_requested_at IS NOT NULL); `phone sync` reports it until confirmed.
--
-- SQLite cannot add a CHECK to an existing column, so `devices` is rebuilt
-- (the migration runner turns foreign keys off around SQLite migrations and
-- runs PRAGMA foreign_key_check before committing).

CREATE TABLE devices_v2 (
    id                 TEXT NOT NULL PRIMARY KEY,
    holder_id          TEXT NOT NULL REFERENCES holders (id),
    kind               TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 32),
    status             TEXT NOT NULL
                       CHECK (status IN ('active', 'superseded', 'lost', 'wipe_pending', 'wiped')),
    created_at         TEXT NOT NULL,
    wiped_at           TEXT,
    token_hash         BLOB UNIQUE CHECK (token_hash IS NULL OR length(token_hash) = 32),  -- SHA-256
    wipe_requested_at  TEXT,
    status_changed_at  TEXT,
    CHECK ((status = 'wiped') = (wiped_at IS NOT NULL)),
    CHECK ((status = 'active') = (wipe_requested_at IS NULL))
) STRICT;

INSERT INTO devices_v2 (id, holder_id, kind, status, created_at, wiped_at, wipe_requested_at,
                        status_changed_at)
SELECT id, holder_id, kind, status, created_at, wiped_at,
       CASE WHEN status = 'active' THEN NULL ELSE COALESCE(wiped_at, created_at) END,
       CASE WHEN status = 'active' THEN NULL ELSE COALESCE(wiped_at, created_at) END
FROM devices;

DROP TABLE devices;
ALTER TABLE devices_v2 RENAME TO devices;
CREATE INDEX devices_holder ON devices (holder_id);
CREATE UNIQUE INDEX devices_one_active ON devices (holder_id) WHERE status = 'active';
CREATE INDEX certificates_device ON certificates (device_id);

-- Where to tell a holder that something happened to their certificates.
-- The e-mail address is personal data: never logged, never in events.
CREATE TABLE holder_contacts (
    holder_id     TEXT    NOT NULL PRIMARY KEY REFERENCES holders (id),
    email         TEXT    CHECK (email IS NULL OR length(email) BETWEEN 3 AND 254),
    notify_email  INTEGER NOT NULL CHECK (notify_email IN (0, 1)),
    updated_at    TEXT    NOT NULL,
    CHECK (notify_email = 0 OR email IS NOT NULL)
) STRICT;
