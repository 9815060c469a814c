-- Shōmei registry, PostgreSQL schema v5: the mobile ID's portrait.
--
-- The holder may bring the card's photo to the phone at provisioning: the
-- phone reads the card face (券面AP, PIN B or the text AP's PIN) and the
-- authority checks the face's signature with its own card-face key and that
-- it is this holder's before keeping the photo with the phone's mobile ID,
-- so that every refresh carries it. NULL: no portrait (the default; the
-- authority keeps no photo of holders who did not bring one). It lives and
-- ends with its mdocs row. At most 24 KiB, like the card face's photo.

ALTER TABLE mdocs ADD COLUMN portrait BYTEA
    CHECK (portrait IS NULL OR length(portrait) BETWEEN 1 AND 24576);
