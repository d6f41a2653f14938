-- 0008_ephemeral_last_seen: the sweeper finds ephemeral devices whose grace period is over
-- (ExpiredEphemeralDevices) through this index of ephemeral devices only (see sqlite's file
-- of the same number).

CREATE INDEX devices_ephemeral_seen ON devices(last_seen_at) WHERE ephemeral;
