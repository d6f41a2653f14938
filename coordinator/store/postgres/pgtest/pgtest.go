// Package pgtest gives tests a fresh PostgreSQL database of their own, on the server named by
// NEXODUS_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable):
//
//	func TestOnPostgres(t *testing.T) {
//		url := pgtest.Database(t) // skipped when there is no server, unless POSTGRES_REQUIRE=1
//		st, err := postgres.Open(ctx, url)
//		...
//	}
//
// Each database has a random name and is dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultServer is the server tests use unless NEXODUS_TEST_POSTGRES names another: the
// database "postgres" is only connected to, to create and drop the tests' own.
const DefaultServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Database creates an empty database and returns its URL; it is dropped (connections and
// all) when t ends. When the server cannot be reached the test is skipped, with the reason,
// unless POSTGRES_REQUIRE=1 (as CI sets it), where that fails the test.
func Database(t testing.TB) string {
	t.Helper()
	server := os.Getenv("NEXODUS_TEST_POSTGRES")
	if server == "" {
		server = DefaultServer
	}
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("pgtest: NEXODUS_TEST_POSTGRES is not a URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		if os.Getenv("POSTGRES_REQUIRE") == "1" {
			t.Fatalf("pgtest: PostgreSQL at %s is required (POSTGRES_REQUIRE=1): %v", u.Redacted(), err)
		}
		t.Skipf("pgtest: no PostgreSQL at %s (set NEXODUS_TEST_POSTGRES to use another; POSTGRES_REQUIRE=1 makes this a failure): %v", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	name := "nexodus_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
