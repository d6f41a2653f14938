-- 0007_device_hostnames: registration looks a hostname up in its organization ignoring ASCII
-- case (GetDeviceByHostname) through this index (see sqlite's file of the same number).

CREATE INDEX devices_org_hostname ON devices(organization_id, nexodus_ascii_fold(hostname));
