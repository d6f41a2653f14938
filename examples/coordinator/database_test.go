package main

import (
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store/postgres/pgtest"
)

func clearEnv(t *testing.T) {
	for _, v := range []string{"NEXODUS_ADMIN_TOKEN", "NEXODUS_RELAY_SECRET", "NEXODUS_SEAL_KEY", "NEXODUS_DB"} {
		t.Setenv(v, "")
	}
}

func TestSealKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db"+sealKeySuffix)
	key, created, err := loadOrCreateSealKey(path)
	require.NoError(t, err, "first start")
	require.True(t, created, "first start")
	require.Len(t, key, 32, "first start")
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "key file mode")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, base64.StdEncoding.EncodeToString(key), strings.TrimSpace(string(data)), "stored as base64, as -seal-key takes it")
	again, created, err := loadOrCreateSealKey(path)
	require.NoError(t, err, "second start")
	assert.False(t, created, "second start")
	assert.Equal(t, key, again, "second start: the same key")

	require.NoError(t, os.Chmod(path, 0o640))
	_, _, err = loadOrCreateSealKey(path)
	assert.ErrorContains(t, err, "chmod 600", "a key file others can read")
	short := filepath.Join(t.TempDir(), "short")
	require.NoError(t, os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString([]byte("16 bytes only!!!"))), 0o600))
	_, err = readSealKey(short)
	assert.ErrorContains(t, err, "32 bytes", "a key of the wrong length")
	_, _, err = loadOrCreateSealKey(filepath.Join(t.TempDir(), "missing", "x"))
	assert.Error(t, err, "a key file in a missing directory")
}

func TestResolveSealKey(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	given := make([]byte, 32)
	given[0] = 7
	b64 := base64.StdEncoding.EncodeToString(given)
	db := filepath.Join(t.TempDir(), "c.db")

	k, err := resolveSealKey(b64, "", db, logger)
	require.NoError(t, err)
	assert.Equal(t, given, k, "a given key wins")
	_, err = os.Stat(db + sealKeySuffix)
	assert.ErrorIs(t, err, os.ErrNotExist, "no key file when a key is given")
	_, err = resolveSealKey("c2hvcnQ=", "", db, logger)
	assert.ErrorContains(t, err, "32 bytes", "a given key of the wrong length")

	k, err = resolveSealKey("", "", db, logger)
	require.NoError(t, err, "SQLite without a key")
	stored, err := readSealKey(db + sealKeySuffix)
	require.NoError(t, err, "the key file beside the database")
	assert.Equal(t, stored, k, "SQLite without a key: the key made beside the database")

	elsewhere := filepath.Join(t.TempDir(), "key")
	k2, err := resolveSealKey("", elsewhere, db, logger)
	require.NoError(t, err, "-seal-key-file")
	assert.NotEqual(t, k, k2, "-seal-key-file: a key of its own")

	const pg = "postgres://nexodus@db.example/nexodus"
	_, err = resolveSealKey("", "", pg, logger)
	assert.ErrorContains(t, err, "every replica must seal", "PostgreSQL without a key: why")
	k3, err := resolveSealKey("", elsewhere, pg, logger)
	require.NoError(t, err, "PostgreSQL with -seal-key-file")
	assert.Equal(t, k2, k3, "PostgreSQL reads the key file")
	_, err = resolveSealKey("", filepath.Join(t.TempDir(), "none"), "postgresql://x/y", logger)
	assert.Error(t, err, "PostgreSQL does not make a key file (the other replicas would not have it)")
}

func TestDBForLogs(t *testing.T) {
	assert.Equal(t, "/var/lib/nexodus.db", dbForLogs("/var/lib/nexodus.db"))
	got := dbForLogs("postgres://nexodus:hunter2@db.example:5432/nexodus?sslmode=require")
	assert.NotContains(t, got, "hunter2", "the password is not logged")
	assert.Contains(t, got, "db.example:5432/nexodus", "the rest is")
}

// TestDBFromEnvironment: NEXODUS_DB names the database when -db is not given, and the admin
// token and seal key files go beside it.
func TestDBFromEnvironment(t *testing.T) {
	clearEnv(t)
	db := filepath.Join(t.TempDir(), "from-env.db")
	t.Setenv("NEXODUS_DB", db)
	_, _, stop := start(t, "-listen", "127.0.0.1:0")
	stop()
	for _, p := range []string{db, db + adminTokenSuffix, db + sealKeySuffix} {
		info, err := os.Stat(p)
		require.NoError(t, err, p)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "mode of %s", filepath.Base(p))
	}
}

func TestFilesFlags(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	db, tokFile, keyFile := filepath.Join(dir, "c.db"), filepath.Join(dir, "admin"), filepath.Join(dir, "key")
	_, _, stop := start(t, "-listen", "127.0.0.1:0", "-db", db, "-admin-token-file", tokFile, "-seal-key-file", keyFile)
	stop()
	for _, p := range []string{tokFile, keyFile} {
		_, err := os.Stat(p)
		assert.NoError(t, err, "%s made where the flag says", p)
	}
	for _, p := range []string{db + adminTokenSuffix, db + sealKeySuffix} {
		_, err := os.Stat(p)
		assert.ErrorIs(t, err, os.ErrNotExist, "%s not made beside the database", p)
	}
}

// TestPostgresRefusesWithoutKeys: before touching the database, a PostgreSQL coordinator
// without an admin token or without a seal key says what it needs and why.
func TestPostgresRefusesWithoutKeys(t *testing.T) {
	clearEnv(t)
	const pg = "postgres://nexodus@127.0.0.1:1/nexodus?sslmode=disable"
	err := run(context.Background(), []string{"-db", pg, "-seal-key", base64.StdEncoding.EncodeToString(make([]byte, 32))}, &syncBuffer{})
	assert.ErrorContains(t, err, "-admin-token", "PostgreSQL without an admin token")
	err = run(context.Background(), []string{"-db", pg, "-admin-token", strings.Repeat("a", 32)}, &syncBuffer{})
	assert.ErrorContains(t, err, "every replica must seal relay secrets with the same one", "PostgreSQL without a seal key")
}

// TestStartsOnPostgres runs the binary on a real PostgreSQL database, twice, as two replicas.
func TestStartsOnPostgres(t *testing.T) {
	clearEnv(t)
	db := pgtest.Database(t)
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tok := strings.Repeat("t", 32)
	args := []string{"-listen", "127.0.0.1:0", "-db", db, "-seal-key", key, "-admin-token", tok}
	url1, logs, stop1 := start(t, args...)
	defer stop1()
	url2, _, stop2 := start(t, args...)
	defer stop2()
	assert.NotContains(t, logs.String(), "password", "logs")
	require.Equal(t, 201, post(t, url1+api.Prefix+"/users", tok, api.CreateUserRequest{Username: "alice"}),
		"create a user on the first replica")
	require.Equal(t, 409, post(t, url2+api.Prefix+"/users", tok, api.CreateUserRequest{Username: "Alice"}),
		"the second replica sees the user (and usernames ignore case)")
}
