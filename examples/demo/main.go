// Command demo shows the Nexodus SDK end to end in one process, with nothing to install: it
// starts a coordinator (SQLite file in a temporary directory), creates a user and a
// registration key, brings up three nodes — web, db and laptop — and has them talk over
// WireGuard: an HTTP request from laptop to web, a TCP echo from laptop to db, a UDP datagram
// from db to laptop. Then it prints each node's peer table.
//
//	go run ./examples/demo [-v]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

func main() {
	verbose := flag.Bool("v", false, "show the coordinator's and nodes' logs")
	flag.Parse()
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, logger); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, logger *slog.Logger) error {
	dir, err := os.MkdirTemp("", "nexodus-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	start := time.Now()
	url, stop, err := startCoordinator(ctx, dir+"/coordinator.db", logger.With("component", "coordinator"))
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "coordinator   %s (SQLite at %s)\n", url, dir+"/coordinator.db")
	key, err := signUp(ctx, url, "alice")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "organization  %q with a reusable registration key\n\n", "alice")

	nodes := map[string]*nexodus.Node{}
	for _, name := range []string{"web", "db", "laptop"} {
		n := &nexodus.Node{
			ControlURL: url,
			AuthKey:    key,
			Hostname:   name,
			Logger:     logger.With("node", name),
		}
		defer n.Close()
		st, err := n.Up(ctx)
		if err != nil {
			return fmt.Errorf("bring up %s: %w", name, err)
		}
		nodes[name] = n
		fmt.Fprintf(out, "node %-8s up: %s  %s  (UDP %s)\n", name, st.TunnelIPv4, st.TunnelIPv6, st.LocalAddr)
	}
	fmt.Fprintf(out, "three nodes up %v after start\n\n", time.Since(start).Round(time.Millisecond))

	// web serves HTTP on the mesh only.
	ln, err := nodes["web"].Listen("tcp", ":80")
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "someone"
		if p, ok := nodes["web"].WhoIs(r.RemoteAddr); ok {
			who = p.Hostname
		}
		fmt.Fprintf(w, "hello %s, this is web", who)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	// db runs a TCP echo service.
	echo, err := nodes["db"].Listen("tcp", ":5432")
	if err != nil {
		return err
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()

	// laptop → web over HTTP, by hostname.
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://web/", nil)
	resp, err := nodes["laptop"].HTTPClient().Do(req)
	if err != nil {
		return fmt.Errorf("laptop → web: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("laptop → web: %w", err)
	}
	fmt.Fprintf(out, "laptop → http://web/      %s  %q (%v)\n", resp.Status, body, time.Since(t0).Round(time.Microsecond))

	// laptop → db over TCP, by hostname.
	t0 = time.Now()
	c, err := nodes["laptop"].Dial(ctx, "tcp", "db:5432")
	if err != nil {
		return fmt.Errorf("laptop → db: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, "ping over WireGuard"); err != nil {
		return fmt.Errorf("laptop → db: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("laptop → db: %w", err)
	}
	fmt.Fprintf(out, "laptop → db:5432 (echo)   %q (%v)\n", strings.TrimSpace(line), time.Since(t0).Round(time.Microsecond))

	// db → laptop over UDP, by tunnel IP.
	pc, err := nodes["laptop"].ListenPacket("udp", ":9999")
	if err != nil {
		return err
	}
	defer pc.Close()
	laptopIP := nodes["laptop"].Status().TunnelIPv4
	u, err := nodes["db"].Dial(ctx, "udp", net.JoinHostPort(laptopIP.String(), "9999"))
	if err != nil {
		return fmt.Errorf("db → laptop: %w", err)
	}
	defer u.Close()
	got, err := udpRoundTrip(ctx, u, pc, []byte("datagram from db"))
	if err != nil {
		return fmt.Errorf("db → laptop: %w", err)
	}
	fmt.Fprintf(out, "db → %s:9999 (UDP)   %q\n\n", laptopIP, got)

	for _, name := range []string{"web", "db", "laptop"} {
		printPeers(out, name, nodes[name].Status())
	}
	return nil
}

// udpRoundTrip sends until one datagram arrives: UDP may drop the first while the WireGuard
// session is still being made, so a real application retries, and so does the demo.
func udpRoundTrip(ctx context.Context, send net.Conn, recv net.PacketConn, msg []byte) (string, error) {
	buf := make([]byte, 1500)
	for {
		if _, err := send.Write(msg); err != nil {
			return "", err
		}
		recv.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := recv.ReadFrom(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return "", err
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
	}
}

func printPeers(out io.Writer, name string, st *nexodus.Status) {
	fmt.Fprintf(out, "peers of %s (%s):\n", name, st.TunnelIPv4)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOSTNAME\tIPV4\tPATH\tICE PAIR\tENDPOINT\tRX\tTX")
	for _, p := range st.Peers {
		pair := "-"
		if p.LocalCandidate != "" {
			pair = string(p.LocalCandidate) + "→" + string(p.RemoteCandidate)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%d\n", p.Hostname, p.TunnelIPv4, p.Path, pair, p.Endpoint, p.RxBytes, p.TxBytes)
	}
	tw.Flush()
	fmt.Fprintln(out)
}

// demoAdminToken is the demo coordinator's admin token; a real one reads it from a file.
const demoAdminToken = "demo-admin-token-not-for-production"

// startCoordinator serves a coordinator on a free port of 127.0.0.1, as the coordinator binary
// would: the SQLite store, the coordinator's handler and an HTTP server in front.
func startCoordinator(ctx context.Context, dbPath string, logger *slog.Logger) (url string, stop func(), err error) {
	store, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return "", nil, err
	}
	coord, err := coordinator.New(ctx, coordinator.Config{Store: store, AdminToken: demoAdminToken, Logger: logger})
	if err != nil {
		store.Close()
		return "", nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		coord.Close()
		store.Close()
		return "", nil, err
	}
	hs := &http.Server{Handler: coord, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		hs.Close()
		coord.Close()
		store.Close()
	}, nil
}

// signUp makes a user with the admin token and, as that user, a registration key for its
// personal organization: the steps an operator and a new user take with nexctl.
func signUp(ctx context.Context, url, username string) (string, error) {
	admin, err := client.New(url, client.WithToken(demoAdminToken))
	if err != nil {
		return "", err
	}
	defer admin.CloseIdleConnections()
	u, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: username})
	if err != nil {
		return "", fmt.Errorf("create user: %w", err)
	}
	tok, err := admin.CreateToken(ctx, u.User.ID, api.CreateTokenRequest{Description: "demo"})
	if err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	user := admin.WithToken(tok.Secret)
	k, err := user.CreateRegKey(ctx, api.CreateRegKeyRequest{OrganizationID: u.PersonalOrganizationID, Description: "demo"})
	if err != nil {
		return "", fmt.Errorf("create registration key: %w", err)
	}
	return k.Secret, nil
}
