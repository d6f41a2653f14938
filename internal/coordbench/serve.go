package main

// The coordinator side of the benchmark: each replica is this program run again with -serve, a
// real coordinator on a real store behind a loopback HTTP listener, so that the figures count
// the coordinator's CPU and memory alone, not the load generator's.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/coordinator/store/postgres"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

// usagePath answers a replica's resource usage (usage, JSON) beside the API.
const usagePath = "/coordbench/usage"

// usage is a replica's CPU time and memory.
type usage struct {
	CPU    time.Duration `json:"cpu"`     // user + system, whole process
	RSS    int64         `json:"rss"`     // bytes, now
	MaxRSS int64         `json:"max_rss"` // bytes, peak
}

func readUsage() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	u := usage{
		CPU:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		MaxRSS: ru.Maxrss * 1024,
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var kb int64
				_, _ = fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
				u.RSS = kb * 1024
			}
		}
	}
	return u
}

// openStore opens the store named by db: a postgres:// URL or a SQLite file.
func openStore(ctx context.Context, db string) (store.Store, error) {
	if isPostgres(db) {
		return postgres.Open(ctx, db)
	}
	return sqlite.Open(ctx, db)
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// serve runs one replica until SIGTERM: it prints "listening ADDR" on stdout once it answers.
func serve(db, adminToken string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	st, err := openStore(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	// The benchmark measures capacity, not the flood limits: every limit is lifted.
	lim := coordinator.RateLimits{
		Requests: coordinator.Unlimited, Signals: coordinator.Unlimited, SignalBytes: coordinator.Unlimited,
		DeviceUpdates: coordinator.Unlimited, Moves: coordinator.Unlimited, Sources: coordinator.Unlimited,
		MaxKeys: 1 << 20,
	}
	srv, err := coordinator.New(ctx, coordinator.Config{Store: st, AdminToken: adminToken, RateLimits: lim})
	if err != nil {
		return err
	}
	defer srv.Close()
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.HandleFunc("GET "+usagePath, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(readUsage())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Printf("listening %s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	_ = srv.Close() // ends the streams, which Shutdown would wait for
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// replica is a running -serve child.
type replica struct {
	cmd  *exec.Cmd
	base string // http://ADDR
}

// startReplica runs this program again with -serve and waits until it listens.
func startReplica(ctx context.Context, db, adminToken string) (*replica, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", "-db", db)
	cmd.Env = append(os.Environ(), "COORDBENCH_ADMIN_TOKEN="+adminToken)
	cmd.Stderr = os.Stderr
	// A replica outlives no benchmark, even one killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		var addr string
		_, _ = fmt.Fscanf(out, "listening %s\n", &addr)
		lines <- addr
	}()
	select {
	case addr := <-lines:
		if addr == "" {
			_ = cmd.Wait()
			return nil, errors.New("replica exited before listening")
		}
		return &replica{cmd: cmd, base: "http://" + addr}, nil
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, errors.New("replica did not start within 2 minutes")
	}
}

// stop ends the replica gracefully.
func (r *replica) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}
