package main

// The database the coordinator runs on, and what used to be derived from its path: -db is a
// SQLite file or a PostgreSQL URL, and the files kept beside a SQLite database (the admin
// token, the seal key) have flags of their own, since a URL has no directory to keep them in.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/postgres"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

// defaultDB is the database without -db or NEXODUS_DB.
const defaultDB = "nexodus.db"

// sealKeySuffix names the seal key file made beside a SQLite database.
const sealKeySuffix = ".seal-key"

// isPostgres reports whether -db names a PostgreSQL database rather than a SQLite file.
func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// openStore opens the database -db names.
func openStore(ctx context.Context, db string, logger *slog.Logger) (store.Store, error) {
	if isPostgres(db) {
		return postgres.Open(ctx, db, postgres.WithLogger(logger))
	}
	return sqlite.Open(ctx, db)
}

// dbForLogs is -db as it may be logged: a URL loses its password.
func dbForLogs(db string) string {
	if !isPostgres(db) {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		return "(a PostgreSQL URL that does not parse)"
	}
	return u.Redacted()
}

// resolveSealKey decides the key that seals organizations' relay secrets: given (-seal-key or
// NEXODUS_SEAL_KEY, base64), else read from keyFile, else, for a SQLite database only, made on
// the first start in a file beside it. A PostgreSQL database is shared by replicas that must
// all seal with one key, which none of them can make alone: without one, the coordinator
// refuses to start.
func resolveSealKey(given, keyFile, db string, logger *slog.Logger) ([]byte, error) {
	if given != "" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(given))
		if err != nil || len(k) != 32 {
			return nil, errors.New("-seal-key must be 32 bytes in standard base64")
		}
		return k, nil
	}
	if isPostgres(db) {
		if keyFile == "" {
			return nil, errors.New("a PostgreSQL database needs a seal key: every replica must seal relay secrets " +
				"with the same one, so pass the same -seal-key (or NEXODUS_SEAL_KEY, or -seal-key-file) to each; " +
				"make one with: head -c 32 /dev/urandom | base64")
		}
		return readSealKey(keyFile)
	}
	if keyFile == "" {
		keyFile = db + sealKeySuffix
	}
	k, created, err := loadOrCreateSealKey(keyFile)
	if err != nil {
		return nil, err
	}
	// The path, never the key. Losing the file loses the relay secrets sealed with it.
	logger.Info("seal key file (keep it with the database's backups)", "path", keyFile, "created", created)
	return k, nil
}

// loadOrCreateSealKey returns the key kept in path (base64 text), first creating the file
// (mode 0600) with 32 fresh random bytes if there is none.
func loadOrCreateSealKey(path string) (key []byte, created bool, err error) {
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh) // crypto/rand.Read never fails
	// O_EXCL: of two coordinators starting on one new database, one writes, the other reads.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(fresh) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			_ = os.Remove(path) // a half-written key would seal with a key nobody has
			return nil, false, fmt.Errorf("seal key: write %s: %w", path, werr)
		}
		return fresh, true, nil
	case !errors.Is(err, fs.ErrExist):
		return nil, false, fmt.Errorf("seal key: create %s: %w", path, err)
	}
	k, err := readSealKey(path)
	return k, false, err
}

// readSealKey reads a key file: 32 bytes in standard base64, alone in a file only its owner
// may read.
func readSealKey(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal key: %s is readable by others (mode %v): chmod 600 it", path, info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("seal key: %s does not hold 32 bytes in standard base64", path)
	}
	return k, nil
}
