-- 0004_org_names: only personal organizations' names are unique (see sqlite's 0004_org_names;
-- PostgreSQL can drop the constraint without rebuilding the table).

ALTER TABLE organizations DROP CONSTRAINT organizations_name_key;
CREATE UNIQUE INDEX organizations_personal_name ON organizations(name) WHERE personal;
CREATE INDEX organizations_name ON organizations(name);
