// Command coordinator runs the reference Nexodus coordinator on a SQLite database.
//
//	go run ./examples/coordinator -listen 127.0.0.1:8080 -db nexodus.db -admin-token SECRET
//
// Devices learn their STUN and TURN servers from -stun-servers and -turn-servers, with TURN
// credentials minted from -relay-secret (or NEXODUS_RELAY_SECRET), the secret the relays share.
//
// Organizations may name their own relays (nexctl relays set); the secrets they give are sealed
// in the database with -seal-key (or NEXODUS_SEAL_KEY): 32 random bytes in standard base64, e.g.
// from "head -c 32 /dev/urandom | base64". Without it they are stored as given.
//
// The admin token may also come from NEXODUS_ADMIN_TOKEN. The database file is created (and its
// schema migrated) if missing. SIGINT or SIGTERM shuts the server down gracefully.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	dbPath := flag.String("db", "nexodus.db", "SQLite database file (created if missing)")
	adminToken := flag.String("admin-token", "", "admin bearer token (default $NEXODUS_ADMIN_TOKEN)")
	pool := flag.String("ipv4-pool", "100.64.0.0/10", "IPv4 pool organizations get their blocks from")
	retention := flag.Duration("event-retention", 24*time.Hour, "how long events are kept for stream resumption")
	debug := flag.Bool("debug", false, "log every request")
	stunServers := flag.String("stun-servers", "", "comma-separated host:port STUN servers advertised to devices (e.g. both UDP ports of a relay)")
	turnServers := flag.String("turn-servers", "", "comma-separated TURN URLs advertised to devices, e.g. turn:198.51.100.10:3478?transport=udp")
	relaySecret := flag.String("relay-secret", "", "secret shared with the relays (default $NEXODUS_RELAY_SECRET)")
	relayTTL := flag.Duration("relay-credential-ttl", 12*time.Hour, "how long minted TURN credentials are valid")
	sealKeyB64 := flag.String("seal-key", "", "32 bytes in base64 sealing organizations' relay secrets in the database (default $NEXODUS_SEAL_KEY)")
	flag.Parse()

	if *adminToken == "" {
		*adminToken = os.Getenv("NEXODUS_ADMIN_TOKEN")
	}
	if *adminToken == "" {
		return errors.New("an admin token is required: pass -admin-token or set NEXODUS_ADMIN_TOKEN")
	}
	if *relaySecret == "" {
		*relaySecret = os.Getenv("NEXODUS_RELAY_SECRET")
	}
	if *turnServers != "" && *relaySecret == "" {
		return errors.New("-turn-servers needs a relay secret: pass -relay-secret or set NEXODUS_RELAY_SECRET")
	}
	if *sealKeyB64 == "" {
		*sealKeyB64 = os.Getenv("NEXODUS_SEAL_KEY")
	}
	var sealKey []byte
	if *sealKeyB64 != "" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*sealKeyB64))
		if err != nil || len(k) != 32 {
			return errors.New("-seal-key must be 32 bytes in standard base64")
		}
		sealKey = k
	}
	prefix, err := netip.ParsePrefix(*pool)
	if err != nil {
		return fmt.Errorf("-ipv4-pool: %w", err)
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := sqlite.Open(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := coordinator.New(ctx, coordinator.Config{
		Store: st, AdminToken: *adminToken, Logger: logger, IPv4Pool: prefix, EventRetention: *retention,
		STUNServers: splitList(*stunServers), TURNServers: splitList(*turnServers),
		RelaySecret: []byte(*relaySecret), RelayCredentialTTL: *relayTTL, SealKey: sealKey,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: event streams are long-lived; the coordinator bounds each write.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	logger.Info("coordinator listening", "addr", ln.Addr().String(), "db", *dbPath)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	// End event streams first so that Shutdown does not wait for them.
	_ = srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
