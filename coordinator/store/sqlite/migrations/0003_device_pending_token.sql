-- 0003_device_pending_token: a second device token awaiting its first use.
--
-- A device registered again by someone who may not replace its token outright (anyone holding
-- the organization's registration key) gets a new token sealed to its public key, stored here;
-- the current token keeps working until the new one is first used, which promotes it.
-- '' and NULL mean "none".

ALTER TABLE devices ADD COLUMN pending_token_id TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN pending_token_hash BLOB;
