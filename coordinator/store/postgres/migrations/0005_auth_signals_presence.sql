-- 0005_auth_signals_presence: sign-in with OpenID providers, browser sessions, device login
-- (RFC 8628), transient signals and device presence (see sqlite's file of the same number).

CREATE TABLE identities (
    issuer     text NOT NULL,
    subject    text NOT NULL,
    user_id    text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email      text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX identities_user ON identities(user_id);

CREATE TABLE sessions (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash bytea,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE login_states (
    state_hash   bytea PRIMARY KEY,
    provider     text NOT NULL,
    nonce        text NOT NULL,
    verifier     text NOT NULL,
    return_to    text NOT NULL,
    link_user_id text REFERENCES users(id) ON DELETE CASCADE,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX login_states_expires ON login_states(expires_at);
CREATE INDEX login_states_link_user ON login_states(link_user_id);

CREATE TABLE device_auths (
    id               text PRIMARY KEY,
    device_code_hash bytea NOT NULL UNIQUE,
    user_code        text NOT NULL UNIQUE,
    client_name      text NOT NULL,
    status           text NOT NULL,
    user_id          text REFERENCES users(id) ON DELETE CASCADE,
    expires_at       timestamptz NOT NULL,
    last_polled_at   timestamptz NOT NULL,
    created_at       timestamptz NOT NULL
);
CREATE INDEX device_auths_expires ON device_auths(expires_at);
CREATE INDEX device_auths_user ON device_auths(user_id);

CREATE TABLE signals (
    revision         bigint PRIMARY KEY,
    organization_id  text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    target_device_id text NOT NULL,
    type             text NOT NULL,
    data             bytea,
    created_at       timestamptz NOT NULL
);
CREATE INDEX signals_target ON signals(organization_id, target_device_id, revision);
CREATE INDEX signals_created ON signals(created_at);

CREATE TABLE presence (
    device_id       text NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    replica_id      text NOT NULL,
    organization_id text NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (device_id, replica_id)
);
CREATE INDEX presence_expires ON presence(expires_at);
