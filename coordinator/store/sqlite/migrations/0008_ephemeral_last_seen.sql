-- 0008_ephemeral_last_seen: the sweeper finds ephemeral devices whose grace period is over
-- (ExpiredEphemeralDevices: last seen before a deadline, no replica holding their stream)
-- through this index, which holds only ephemeral devices, instead of reading every device.

CREATE INDEX devices_ephemeral_seen ON devices(last_seen_at) WHERE ephemeral = 1;
