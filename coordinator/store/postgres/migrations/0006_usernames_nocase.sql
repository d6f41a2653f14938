-- 0006_usernames_nocase: usernames, and so personal organizations' names, are unique ignoring
-- ASCII case (see sqlite's file of the same number).
--
-- nexodus_ascii_fold folds exactly A-Z to a-z, like SQLite's NOCASE, whatever the database's
-- locale (lower() would depend on it and fold more than ASCII). Rows that would collide are
-- not merged: the DO block fails naming them, so an operator renames one of each group and
-- starts again.

CREATE FUNCTION nexodus_ascii_fold(s text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT translate(s, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') $$;

DO $$
DECLARE
    groups text;
BEGIN
    SELECT string_agg(g, '; ' ORDER BY k, g) INTO groups FROM (
        SELECT 1 AS k, 'usernames ' || string_agg(username, ', ' ORDER BY username COLLATE "C") AS g
        FROM users GROUP BY nexodus_ascii_fold(username) HAVING count(*) > 1
        UNION ALL
        SELECT 2, 'personal organization names ' || string_agg(name, ', ' ORDER BY name COLLATE "C")
        FROM organizations WHERE personal GROUP BY nexodus_ascii_fold(name) HAVING count(*) > 1
    ) collisions;
    IF groups IS NOT NULL THEN
        RAISE EXCEPTION 'names must become unique ignoring case, but these differ only in case: %; rename all but one of each group and start again', groups;
    END IF;
END $$;

CREATE UNIQUE INDEX users_username_fold ON users(nexodus_ascii_fold(username));
DROP INDEX organizations_personal_name;
CREATE UNIQUE INDEX organizations_personal_name ON organizations(nexodus_ascii_fold(name)) WHERE personal;
