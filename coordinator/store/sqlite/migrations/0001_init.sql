-- 0001_init: the coordinator's first schema.
--
-- Conventions (shared with the PostgreSQL engine so the two stay comparable):
--   * times are TEXT in UTC, fixed-width RFC 3339 with nanoseconds, so text order is time order;
--   * booleans are INTEGER 0/1; secret hashes are BLOB;
--   * lists (endpoints, child prefixes) are JSON text;
--   * optional strings that take part in uniqueness (tunnel addresses) are NULL when unset,
--     so two devices without an IPv6 address do not collide.

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    username   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    description TEXT NOT NULL,
    secret_hash BLOB,
    expires_at  TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users(id),
    personal    INTEGER NOT NULL,
    ipv4_cidr   TEXT NOT NULL,
    ipv6_cidr   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX organizations_created ON organizations(created_at, id);

CREATE TABLE memberships (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    joined_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE invitations (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    inviter_id      TEXT NOT NULL,
    status          TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX invitations_org ON invitations(organization_id);
CREATE INDEX invitations_user ON invitations(user_id);

CREATE TABLE reg_keys (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    owner_id        TEXT NOT NULL,
    description     TEXT NOT NULL,
    secret_hash     BLOB,
    single_use      INTEGER NOT NULL,
    ephemeral       INTEGER NOT NULL,
    expires_at      TEXT,
    used            INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX reg_keys_org ON reg_keys(organization_id);

-- reg_key_id has no foreign key: deleting a key must not delete or block the devices it made.
CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    owner_id        TEXT NOT NULL,
    reg_key_id      TEXT NOT NULL,
    public_key      TEXT NOT NULL UNIQUE,
    hostname        TEXT NOT NULL,
    tunnel_ipv4     TEXT,
    tunnel_ipv6     TEXT,
    endpoints       TEXT NOT NULL,
    symmetric_nat   INTEGER NOT NULL,
    child_prefixes  TEXT NOT NULL,
    ephemeral       INTEGER NOT NULL,
    token_id        TEXT NOT NULL,
    token_hash      BLOB,
    last_seen_at    TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (organization_id, tunnel_ipv4),
    UNIQUE (organization_id, tunnel_ipv6)
);
CREATE INDEX devices_owner ON devices(owner_id);

-- Revisions come from store_meta.last_revision rather than MAX(revision) so that a number is
-- never reused after the newest events are pruned or cascaded away.
CREATE TABLE events (
    revision         INTEGER PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    target_device_id TEXT NOT NULL,
    type             TEXT NOT NULL,
    data             BLOB,
    created_at       TEXT NOT NULL
);
CREATE INDEX events_org ON events(organization_id, revision);
CREATE INDEX events_created ON events(created_at);

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO store_meta (key, value) VALUES ('last_revision', 0), ('pruned_revision', 0);
