-- Shōmei registry, PostgreSQL schema v2: phones (device tokens, remote wipe)
-- and holder notification contacts.
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

ALTER TABLE devices
    ADD COLUMN token_hash         BYTEA UNIQUE
                                  CHECK (token_hash IS NULL OR length(token_hash) = 32),  -- SHA-256
    ADD COLUMN wipe_requested_at  TIMESTAMPTZ,
    ADD COLUMN status_changed_at  TIMESTAMPTZ;

UPDATE devices
   SET wipe_requested_at = COALESCE(wiped_at, created_at),
       status_changed_at = COALESCE(wiped_at, created_at)
 WHERE status <> 'active';

ALTER TABLE devices
    ADD CONSTRAINT devices_kind CHECK (length(kind) BETWEEN 1 AND 32),
    ADD CONSTRAINT devices_status
        CHECK (status IN ('active', 'superseded', 'lost', 'wipe_pending', 'wiped')),
    ADD CONSTRAINT devices_wiped_at CHECK ((status = 'wiped') = (wiped_at IS NOT NULL)),
    ADD CONSTRAINT devices_wipe_queued CHECK ((status = 'active') = (wipe_requested_at IS NULL));

CREATE UNIQUE INDEX devices_one_active ON devices (holder_id) WHERE status = 'active';
CREATE INDEX certificates_device ON certificates (device_id);

-- Where to tell a holder that something happened to their certificates.
-- The e-mail address is personal data: never logged, never in events.
CREATE TABLE holder_contacts (
    holder_id     TEXT        NOT NULL PRIMARY KEY REFERENCES holders (id),
    email         TEXT        CHECK (email IS NULL OR length(email) BETWEEN 3 AND 254),
    notify_email  BOOLEAN     NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CHECK (NOT notify_email OR email IS NOT NULL)
);
