-- 0004_org_names: only personal organizations' names are unique.
--
-- A global UNIQUE(name) let any user take a future username (the user's personal
-- organization could then not be made) and told users which names other organizations use.
-- SQLite cannot drop a column constraint, so the table is rebuilt (the procedure of
-- https://www.sqlite.org/lang_altertable.html#otheralter). This file runs with foreign keys
-- off (the marker below): dropping the old table must not cascade to memberships, devices and
-- the rest, which keep referring to "organizations" by name and so refer to the new table.
-- The runner checks foreign keys before committing.
--
-- nexodus:foreign-keys-off

CREATE TABLE organizations_new (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users(id),
    personal    INTEGER NOT NULL,
    ipv4_cidr   TEXT NOT NULL,
    ipv6_cidr   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
INSERT INTO organizations_new (id, name, description, owner_id, personal, ipv4_cidr, ipv6_cidr, created_at)
    SELECT id, name, description, owner_id, personal, ipv4_cidr, ipv6_cidr, created_at FROM organizations;
DROP TABLE organizations;
ALTER TABLE organizations_new RENAME TO organizations;
CREATE INDEX organizations_created ON organizations(created_at, id);
CREATE UNIQUE INDEX organizations_personal_name ON organizations(name) WHERE personal = 1;
CREATE INDEX organizations_name ON organizations(name);
