-- 0003_device_pending_token: a second device token awaiting its first use (see sqlite's
-- 0003_device_pending_token). '' and NULL mean "none".

ALTER TABLE devices ADD COLUMN pending_token_id text NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN pending_token_hash bytea;
