-- 0006_usernames_nocase: usernames, and so personal organizations' names, are unique ignoring
-- ASCII case, so that "Carl" cannot be made beside "carl" and sign-in finds either spelling.
--
-- SQLite's NOCASE collation folds exactly A-Z to a-z. Rows that would collide are not merged:
-- before this file runs, the migration runner looks for them and fails naming them (see
-- migrate.go), so an operator renames one of each pair and starts again.

CREATE UNIQUE INDEX users_username_nocase ON users(username COLLATE NOCASE);
DROP INDEX organizations_personal_name;
CREATE UNIQUE INDEX organizations_personal_name ON organizations(name COLLATE NOCASE) WHERE personal = 1;
