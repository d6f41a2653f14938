// Command webapp is an HTTP service reachable only over a Nexodus mesh, in the manner of a
// tsnet app: it has no port on the host's network at all. It greets each caller by the
// hostname of the peer it came from, which the mesh vouches for (WireGuard authenticated the
// packets), so it can serve as a sketch of identity-aware access without passwords.
//
//	webapp -control URL -authkey KEY [-hostname web] [-state DIR] [-port 80]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nexodus-sdk/nexodus"
)

func main() {
	control := flag.String("control", os.Getenv("NEXODUS_URL"), "coordinator URL (env NEXODUS_URL)")
	authKey := flag.String("authkey", os.Getenv("NEXODUS_AUTHKEY"), "registration key (env NEXODUS_AUTHKEY)")
	hostname := flag.String("hostname", "web", "hostname on the mesh")
	state := flag.String("state", "", "state directory (empty = ephemeral)")
	port := flag.Int("port", 80, "TCP port on the mesh")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, &nexodus.Node{
		ControlURL: *control, AuthKey: *authKey, Hostname: *hostname, StateDir: *state,
		Logger: log.With("component", "node"),
	}, *port); err != nil {
		log.Error("webapp", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, node *nexodus.Node, port int) error {
	defer node.Close()
	st, err := node.Up(ctx)
	if err != nil {
		return err
	}
	ln, err := node.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(node), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	log.Info("serving on the mesh only", "url", fmt.Sprintf("http://%s:%d/", st.Hostname, port),
		"ipv4", st.TunnelIPv4)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func handler(node *nexodus.Node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		who := "an unknown peer"
		if p, ok := node.WhoIs(r.RemoteAddr); ok {
			who = p.Hostname
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<h1>Hello, %s</h1>\n<p>Peers of this node:</p>\n<ul>\n", html.EscapeString(who))
		for _, p := range node.Peers() {
			fmt.Fprintf(w, "<li>%s (%s) — %s</li>\n", html.EscapeString(p.Hostname), p.TunnelIPv4, p.Path)
		}
		fmt.Fprintln(w, "</ul>")
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		p, ok := node.WhoIs(r.RemoteAddr)
		if !ok {
			http.Error(w, "not a peer", http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, p.Hostname)
	})
	return mux
}
