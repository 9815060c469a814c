-- Shōmei registry, PostgreSQL schema v6: revoked reader certificates.
--
-- The reader CA issues 90-day reader authentication certificates to
-- registered relying parties (ISO/IEC 18013-5 §9.1.4); issuing stores only
-- an event. A revoked one (POST /v1/reader-certificates/{serial}/revoke, by
-- the operator or by the relying party it was issued to) gets a row here,
-- which the reader CA's CRL (/ca/reader-ca.crl) lists until not_after.
-- A certificate is revoked once: the serial is the key.

CREATE TABLE reader_revocations (
    serial            TEXT        NOT NULL PRIMARY KEY
                      CHECK (length(serial) BETWEEN 1 AND 40),  -- lowercase hex
    relying_party_id  TEXT        NOT NULL CHECK (length(relying_party_id) BETWEEN 1 AND 64),
    reason            BIGINT      NOT NULL CHECK (reason BETWEEN 0 AND 10),  -- RFC 5280 CRLReason
    revoked_at        TIMESTAMPTZ NOT NULL,
    not_after         TIMESTAMPTZ NOT NULL
);

CREATE INDEX reader_revocations_not_after ON reader_revocations (not_after);
