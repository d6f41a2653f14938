-- 0005_auth_signals_presence: sign-in with OpenID providers, browser sessions, device login
-- (RFC 8628), transient signals and device presence.
--
-- Every table that belongs to a user goes with the user (ON DELETE CASCADE), so DeleteUser is
-- one DELETE; login states and device authorizations refer to a user only once one is known
-- (NULL before). Signals are numbered from store_meta.last_revision like events, but live in a
-- table of their own so that pruning them never moves pruned_revision. Presence rows go with
-- their device.

CREATE TABLE identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX identities_user ON identities(user_id);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash BLOB,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE login_states (
    state_hash   BLOB PRIMARY KEY,
    provider     TEXT NOT NULL,
    nonce        TEXT NOT NULL,
    verifier     TEXT NOT NULL,
    return_to    TEXT NOT NULL,
    link_user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    expires_at   TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX login_states_expires ON login_states(expires_at);
CREATE INDEX login_states_link_user ON login_states(link_user_id);

CREATE TABLE device_auths (
    id               TEXT PRIMARY KEY,
    device_code_hash BLOB NOT NULL UNIQUE,
    user_code        TEXT NOT NULL UNIQUE,
    client_name      TEXT NOT NULL,
    status           TEXT NOT NULL,
    user_id          TEXT REFERENCES users(id) ON DELETE CASCADE,
    expires_at       TEXT NOT NULL,
    last_polled_at   TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX device_auths_expires ON device_auths(expires_at);
CREATE INDEX device_auths_user ON device_auths(user_id);

CREATE TABLE signals (
    revision         INTEGER PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    target_device_id TEXT NOT NULL,
    type             TEXT NOT NULL,
    data             BLOB,
    created_at       TEXT NOT NULL
);
CREATE INDEX signals_target ON signals(organization_id, target_device_id, revision);
CREATE INDEX signals_created ON signals(created_at);

CREATE TABLE presence (
    device_id       TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    replica_id      TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    PRIMARY KEY (device_id, replica_id)
);
CREATE INDEX presence_expires ON presence(expires_at);
