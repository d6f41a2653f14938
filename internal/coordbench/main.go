// Command coordbench measures the coordinator at scale: real coordinator processes (one, or
// several replicas on one PostgreSQL database) on a real store, driven over loopback HTTP, and
// prints the figures of issue 14's table as Markdown rows.
//
//	go run ./internal/coordbench -db sqlite -devices 10000 -org-size 1000 -watchers 1000 -concurrency 32
//	go run ./internal/coordbench -db postgres://postgres@127.0.0.1:5432/postgres -replicas 3
//
// -db sqlite uses a fresh SQLite file in a temporary directory; a postgres:// URL names a
// server on which a fresh database is created (and dropped at the end), so runs do not see
// each other's data. Each replica is this program run again with -serve, so the CPU and
// memory figures are the coordinators' own; the load generator runs in this process.
//
// The phases: register -devices devices, -org-size per organization, from -concurrency
// clients (round-robin over the replicas); open -watchers device event streams of the first
// organization and wait until every one has its sync; change devices of the first organization
// one at a time and time each change's arrival on every stream; change devices of the last
// organization (nobody watches it) and count the coordinators' CPU per change; GET the first
// organization's peer list; read the coordinators' memory.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
)

// options are the command's flags.
type options struct {
	db          string
	devices     int
	orgSize     int
	watchers    int
	concurrency int
	replicas    int
	changes     int
	unwatched   int
	gets        int
}

func main() {
	var o options
	serveMode := flag.Bool("serve", false, "run one coordinator replica (internal: the benchmark starts these)")
	flag.StringVar(&o.db, "db", "sqlite", `"sqlite" (a fresh file), a SQLite file path, or a postgres:// server URL`)
	flag.IntVar(&o.devices, "devices", 10000, "devices to register")
	flag.IntVar(&o.orgSize, "org-size", 1000, "devices per organization")
	flag.IntVar(&o.watchers, "watchers", 1000, "device event streams opened in the first organization")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent registering clients")
	flag.IntVar(&o.replicas, "replicas", 1, "coordinator replicas (PostgreSQL only)")
	flag.IntVar(&o.changes, "changes", 20, "device changes timed on every watcher")
	flag.IntVar(&o.unwatched, "unwatched-changes", 50, "device changes in an unwatched organization, for their CPU")
	flag.IntVar(&o.gets, "gets", 50, "peer-list GETs timed")
	flag.Parse()
	if *serveMode {
		if err := serve(o.db, os.Getenv("COORDBENCH_ADMIN_TOKEN")); err != nil {
			fmt.Fprintln(os.Stderr, "coordbench -serve:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "coordbench:", err)
		os.Exit(1)
	}
}

func (o options) check() error {
	switch {
	case o.devices < 1 || o.orgSize < 1 || o.concurrency < 1 || o.replicas < 1:
		return errors.New("-devices, -org-size, -concurrency and -replicas must be positive")
	case o.watchers > min(o.orgSize, o.devices):
		return errors.New("-watchers must not exceed the first organization's devices")
	case o.replicas > 1 && !isPostgres(o.db):
		return errors.New("-replicas above 1 needs a postgres:// -db")
	case o.devices/o.orgSize < 2:
		return errors.New("need at least two organizations (-devices ≥ 2 × -org-size): the last one is the unwatched one")
	}
	return nil
}

func run(ctx context.Context, o options) error {
	if err := o.check(); err != nil {
		return err
	}
	db, cleanup, err := prepareDB(ctx, o.db)
	if err != nil {
		return err
	}
	defer cleanup()
	admin := randomHex(16)
	var reps []*replica
	defer func() {
		for _, r := range reps {
			r.stop()
		}
	}()
	for range o.replicas {
		r, err := startReplica(ctx, db, admin)
		if err != nil {
			return err
		}
		reps = append(reps, r)
	}
	engine := "SQLite"
	if isPostgres(db) {
		engine = "PostgreSQL"
	}
	fmt.Fprintf(os.Stderr, "coordbench: %s, %d replica(s), %d devices, %d per organization, %d watchers, %d clients, GOMAXPROCS %d\n",
		engine, o.replicas, o.devices, o.orgSize, o.watchers, o.concurrency, runtime.GOMAXPROCS(0))
	b := newBench(o, reps, admin)
	res, err := b.run(ctx)
	if err != nil {
		return err
	}
	res.print(os.Stdout, fmt.Sprintf("%s, %d replica(s)", engine, o.replicas))
	return nil
}

// prepareDB returns the store the replicas share: a fresh SQLite file, or a fresh database on
// the PostgreSQL server, and what removes it.
func prepareDB(ctx context.Context, db string) (string, func(), error) {
	if !isPostgres(db) {
		if db != "sqlite" {
			return db, func() {}, nil
		}
		dir, err := os.MkdirTemp("", "coordbench-")
		if err != nil {
			return "", nil, err
		}
		return filepath.Join(dir, "bench.db"), func() { _ = os.RemoveAll(dir) }, nil
	}
	u, err := url.Parse(db)
	if err != nil {
		return "", nil, errors.New("-db does not parse as a URL")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, db)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", u.Host, err)
	}
	defer conn.Close(context.Background())
	name := "coordbench_" + randomHex(6)
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u.Path = "/" + name
	cleanup := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(dctx, db); err == nil {
			_, _ = c.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(dctx)
		}
	}
	return u.String(), cleanup, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
