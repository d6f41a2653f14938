-- 0007_device_hostnames: registration looks a hostname up in its organization ignoring ASCII
-- case (GetDeviceByHostname) through this index instead of reading every device of the
-- organization. Not unique: older databases may hold names that differ only in case.

CREATE INDEX devices_org_hostname ON devices(organization_id, hostname COLLATE NOCASE);
