-- 0002_org_relays: organizations' own relays.
--
-- One row per organization that names its own relays; none means the coordinator's default.
-- The server lists are JSON text; secret is opaque to the store (the coordinator seals it when
-- it has a key). Deleting the organization deletes its row.

CREATE TABLE org_relays (
    organization_id TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    stun_servers    TEXT NOT NULL,
    turn_servers    TEXT NOT NULL,
    secret          BLOB NOT NULL,
    updated_at      TEXT NOT NULL
);
