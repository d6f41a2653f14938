// tls.go serves the coordinator over TLS: a certificate and key from files (-tls-cert,
// -tls-key), or certificates from an ACME CA such as Let's Encrypt for public names
// (-acme-host, through golang.org/x/crypto/acme/autocert), with HSTS on every answer. Plain
// HTTP is for loopback development; on any other address it needs -insecure-http (behind a
// proxy that terminates TLS).

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

type tlsFlags struct {
	cert, key    *string
	acmeHosts    *string
	acmeCache    *string
	acmeEmail    *string
	acmeHTTP     *string
	insecureHTTP *bool

	manager *autocert.Manager // set with -acme-host
}

func tlsFlagSet(fs *flag.FlagSet) *tlsFlags {
	return &tlsFlags{
		cert:         fs.String("tls-cert", "", "PEM certificate chain file: serve HTTPS (with -tls-key)"),
		key:          fs.String("tls-key", "", "PEM private key file of -tls-cert"),
		acmeHosts:    fs.String("acme-host", "", "comma-separated public host names to get certificates for from the ACME CA (Let's Encrypt); serve HTTPS on -listen, usually :443"),
		acmeCache:    fs.String("acme-cache", "acme-cache", "directory keeping ACME account keys and certificates"),
		acmeEmail:    fs.String("acme-email", "", "contact address given to the ACME CA (optional)"),
		acmeHTTP:     fs.String("acme-http-listen", "", "also answer ACME http-01 challenges (and redirect to HTTPS) on this address, e.g. :80"),
		insecureHTTP: fs.Bool("insecure-http", false, "serve plain HTTP on a non-loopback address (only behind a proxy that terminates TLS)"),
	}
}

// config checks the TLS flags against the listen address and returns the TLS configuration,
// nil for plain HTTP.
func (t *tlsFlags) config(listen string) (*tls.Config, error) {
	files := *t.cert != "" || *t.key != ""
	switch {
	case files && *t.acmeHosts != "":
		return nil, errors.New("-tls-cert/-tls-key and -acme-host exclude each other")
	case files:
		if *t.cert == "" || *t.key == "" {
			return nil, errors.New("-tls-cert and -tls-key go together")
		}
		// Read at every handshake-time reload would be nicer; a restart picks up a renewed
		// certificate, and a bad file fails at start rather than at the first client.
		cert, err := tls.LoadX509KeyPair(*t.cert, *t.key)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
	case *t.acmeHosts != "":
		t.manager = &autocert.Manager{
			Prompt: autocert.AcceptTOS, HostPolicy: autocert.HostWhitelist(splitList(*t.acmeHosts)...),
			Cache: autocert.DirCache(*t.acmeCache), Email: *t.acmeEmail,
		}
		cfg := t.manager.TLSConfig() // answers tls-alpn-01 challenges on the same listener
		cfg.MinVersion = tls.VersionTLS12
		return cfg, nil
	}
	if !*t.insecureHTTP && !loopback(listen) {
		return nil, fmt.Errorf("refusing plain HTTP on %s, which is not a loopback address: serve HTTPS with -tls-cert/-tls-key or -acme-host, or pass -insecure-http behind a proxy that terminates TLS", listen)
	}
	return nil, nil
}

// loopback reports whether a listen address serves this host only.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// hsts tells browsers to use HTTPS only for this host from now on (a year).
func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		h.ServeHTTP(w, r)
	})
}

// serveACMEHTTP answers ACME http-01 challenges on -acme-http-listen (other requests are
// redirected to HTTPS) until the returned stop is called.
func (t *tlsFlags) serveACMEHTTP(logger *slog.Logger) (stop func(), err error) {
	if t.manager == nil || *t.acmeHTTP == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", *t.acmeHTTP)
	if err != nil {
		return nil, fmt.Errorf("-acme-http-listen: %w", err)
	}
	hs := &http.Server{
		Handler: t.manager.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: time.Minute, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	logger.Info("answering ACME http-01 challenges", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}, nil
}
