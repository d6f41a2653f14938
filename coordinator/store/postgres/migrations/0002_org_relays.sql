-- 0002_org_relays: organizations' own relays (see sqlite's 0002_org_relays).

CREATE TABLE org_relays (
    organization_id text PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    stun_servers    text[] NOT NULL,
    turn_servers    text[] NOT NULL,
    secret          bytea NOT NULL,
    updated_at      timestamptz NOT NULL
);
