-- 0001_init: the coordinator's first schema (the PostgreSQL form of sqlite's 0001_init).
--
-- Conventions:
--   * times are timestamptz (microseconds); secret hashes and event data are bytea;
--   * booleans are boolean; endpoints are jsonb, child prefixes text[];
--   * optional strings that take part in uniqueness (tunnel addresses) are NULL when unset,
--     so two devices without an IPv6 address do not collide.

CREATE TABLE users (
    id         text PRIMARY KEY,
    username   text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE tokens (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    description text NOT NULL,
    secret_hash bytea,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE organizations (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text NOT NULL,
    owner_id    text NOT NULL REFERENCES users(id),
    personal    boolean NOT NULL,
    ipv4_cidr   text NOT NULL,
    ipv6_cidr   text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX organizations_created ON organizations(created_at, id);
CREATE INDEX organizations_owner ON organizations(owner_id);

CREATE TABLE memberships (
    organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role            text NOT NULL,
    joined_at       timestamptz NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE invitations (
    id              text PRIMARY KEY,
    organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role            text NOT NULL,
    inviter_id      text NOT NULL,
    status          text NOT NULL,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX invitations_org ON invitations(organization_id);
CREATE INDEX invitations_user ON invitations(user_id);

CREATE TABLE reg_keys (
    id              text PRIMARY KEY,
    organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    owner_id        text NOT NULL,
    description     text NOT NULL,
    secret_hash     bytea,
    single_use      boolean NOT NULL,
    ephemeral       boolean NOT NULL,
    expires_at      timestamptz,
    used            boolean NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX reg_keys_org ON reg_keys(organization_id);

-- reg_key_id has no foreign key: deleting a key must not delete or block the devices it made.
CREATE TABLE devices (
    id              text PRIMARY KEY,
    organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    owner_id        text NOT NULL,
    reg_key_id      text NOT NULL,
    public_key      text NOT NULL UNIQUE,
    hostname        text NOT NULL,
    tunnel_ipv4     text,
    tunnel_ipv6     text,
    endpoints       jsonb NOT NULL,
    symmetric_nat   boolean NOT NULL,
    child_prefixes  text[] NOT NULL,
    ephemeral       boolean NOT NULL,
    token_id        text NOT NULL,
    token_hash      bytea,
    last_seen_at    timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (organization_id, tunnel_ipv4),
    UNIQUE (organization_id, tunnel_ipv6)
);
CREATE INDEX devices_owner ON devices(owner_id);

-- Revisions come from store_meta.last_revision rather than a sequence: the counter row is
-- updated inside the appending transaction, so its row lock makes appenders take numbers in
-- commit order, and a rollback gives the number back. No gaps, no reuse after pruning.
CREATE TABLE events (
    revision         bigint PRIMARY KEY,
    organization_id  text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    target_device_id text NOT NULL,
    type             text NOT NULL,
    data             bytea,
    created_at       timestamptz NOT NULL
);
CREATE INDEX events_org ON events(organization_id, revision);
CREATE INDEX events_created ON events(created_at);

CREATE TABLE store_meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO store_meta (key, value) VALUES ('last_revision', 0), ('pruned_revision', 0);
