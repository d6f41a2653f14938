// Command relay runs the Nexodus relay: a STUN and TURN server that forwards WireGuard
// ciphertext between devices that cannot reach each other directly.
//
//	relay -listen 0.0.0.0:3478 -listen2 0.0.0.0:3479 -tcp-listen 0.0.0.0:3478 \
//	      -public-ip 198.51.100.10 -secret "$SECRET" -realm nexodus \
//	      -metrics-listen 127.0.0.1:9090
//
// The secret may also come from NEXODUS_RELAY_SECRET; it must be the coordinator's
// -relay-secret. SIGINT or SIGTERM shuts the relay down gracefully. See README.md.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nexodus-sdk/nexodus/relay"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "0.0.0.0:3478", "UDP address for STUN and TURN")
	listen2 := flag.String("listen2", "", "second UDP address (another port), so devices can detect symmetric NAT")
	tcpListen := flag.String("tcp-listen", "", "TCP address for STUN and TURN, for networks that block UDP")
	tlsListen := flag.String("tls-listen", "", "TLS address for STUN and TURN (turns:); needs -tls-cert and -tls-key")
	tlsCert := flag.String("tls-cert", "", "TLS certificate chain (PEM)")
	tlsKey := flag.String("tls-key", "", "TLS private key (PEM)")
	publicIP := flag.String("public-ip", "", "public IP announced as the relayed address (required)")
	relayAddr := flag.String("relay-address", "", "local IP relay sockets bind to (default: all interfaces)")
	portRange := flag.String("relay-ports", "", "port range of relay sockets, e.g. 49152-65535 (default: any)")
	secret := flag.String("secret", "", "secret shared with the coordinator (default $NEXODUS_RELAY_SECRET)")
	realm := flag.String("realm", relay.DefaultRealm, "TURN realm")
	quota := flag.Int("quota", 0, "maximum live allocations per device (0: no limit)")
	bandwidth := flag.Int64("bandwidth", 0, "maximum bytes/s per allocation and direction (0: no limit)")
	authFailRate := flag.Float64("auth-failure-rate", 1, "failed authentications per second allowed from one source address once the burst is spent (negative: no limit)")
	authFailBurst := flag.Int("auth-failure-burst", 20, "failed authentications one source address may make at once before it is throttled")
	statsEvery := flag.Duration("stats-interval", 5*time.Minute, "how often to log counters (0: never)")
	metricsListen := flag.String("metrics-listen", "", "TCP address serving Prometheus metrics at /metrics, e.g. 127.0.0.1:9090 (empty: off)")
	debug := flag.Bool("debug", false, "debug logging")
	flag.Parse()

	if *secret == "" {
		*secret = os.Getenv("NEXODUS_RELAY_SECRET")
	}
	if *secret == "" {
		return errors.New("a secret is required: pass -secret or set NEXODUS_RELAY_SECRET")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg := relay.Config{
		Realm:            *realm,
		Secret:           []byte(*secret),
		QuotaPerUser:     *quota,
		BandwidthLimit:   *bandwidth,
		AuthFailureRate:  *authFailRate,
		AuthFailureBurst: *authFailBurst,
		Logger:           logger,
	}
	if *publicIP != "" {
		ip, err := netip.ParseAddr(*publicIP)
		if err != nil {
			return fmt.Errorf("-public-ip: %w", err)
		}
		cfg.PublicIP = ip
	}
	if *relayAddr != "" {
		ip, err := netip.ParseAddr(*relayAddr)
		if err != nil {
			return fmt.Errorf("-relay-address: %w", err)
		}
		cfg.RelayAddress = ip
	}
	if *portRange != "" {
		if _, err := fmt.Sscanf(*portRange, "%d-%d", &cfg.MinRelayPort, &cfg.MaxRelayPort); err != nil {
			return fmt.Errorf("-relay-ports %q: want LOW-HIGH: %w", *portRange, err)
		}
	}
	for _, a := range []string{*listen, *listen2} {
		if a != "" {
			cfg.UDPListen = append(cfg.UDPListen, a)
		}
	}
	if *tcpListen != "" {
		cfg.TCPListen = []string{*tcpListen}
	}
	if *tlsListen != "" {
		if *tlsCert == "" || *tlsKey == "" {
			return errors.New("-tls-listen needs -tls-cert and -tls-key")
		}
		// Load the pair on each handshake so that a renewed certificate is picked up
		// without a restart.
		if _, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey); err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		cfg.TLSListen = *tlsListen
		cfg.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				c, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
				return &c, err
			},
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := relay.New(ctx, cfg)
	if err != nil {
		return err
	}
	var metricsDone <-chan struct{} // nil without -metrics-listen: never ready
	var ms *metricsServer
	if *metricsListen != "" {
		if ms, err = startMetrics(*metricsListen, srv); err != nil {
			return errors.Join(err, srv.Close())
		}
		metricsDone = ms.Done()
		logger.Info("serving metrics", "addr", ms.Addr().String())
	}
	var tick <-chan time.Time
	if *statsEvery > 0 {
		t := time.NewTicker(*statsEvery)
		defer t.Stop()
		tick = t.C
	}
wait:
	for {
		select {
		case <-tick:
			logStats(logger, srv.Stats())
		case <-metricsDone:
			logger.Error("metrics endpoint stopped; shutting down")
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	logger.Info("shutting down")
	if ms != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = ms.Close(sctx)
		cancel()
	}
	err = errors.Join(err, srv.Close())
	logStats(logger, srv.Stats())
	return err
}

func logStats(log *slog.Logger, st relay.Stats) {
	log.Info("relay stats", "allocations", st.Allocations, "allocations_total", st.AllocationsTotal,
		"bytes_relayed", st.BytesRelayed, "packets_relayed", st.PacketsRelayed, "packets_dropped", st.PacketsDropped,
		"auth_failures", st.AuthFailures, "auth_throttled", st.AuthThrottled, "quota_rejections", st.QuotaRejections)
}
