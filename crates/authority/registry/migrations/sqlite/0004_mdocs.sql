-- Shōmei registry, SQLite schema v4: mobile IDs (ISO 18013-5 mdoc).
--
-- A phone provisioned with an attested P-256 device key gets a mobile ID
-- (docType org.iso.23220.1.jp.mnc). Each phone's mobile ID has one index in
-- the authority's Token Status List; a refresh (phone sync) re-signs the MSO
-- under the same index and device key. The list entry's value is derived
-- from the phone (devices.status) and its certificates, never stored twice.
-- No personal data here: the document is built from the holder's record
-- when it is signed.

CREATE TABLE mdocs (
    idx         INTEGER NOT NULL PRIMARY KEY CHECK (idx >= 0),
    device_id   TEXT    NOT NULL UNIQUE REFERENCES devices (id),
    device_key  BLOB    NOT NULL CHECK (length(device_key) BETWEEN 1 AND 512),  -- SPKI DER
    created_at  TEXT    NOT NULL
) STRICT;
