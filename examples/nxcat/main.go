// Command nxcat is netcat for a Nexodus mesh: it joins the mesh as a node and listens, dials
// or prints the node's peer table.
//
//	nxcat -control URL -authkey KEY -hostname NAME [-state DIR] listen [-echo] PORT
//	nxcat -control URL -authkey KEY -hostname NAME [-state DIR] dial HOST:PORT
//	nxcat -control URL -authkey KEY -hostname NAME [-state DIR] status [-o json] [-wait N]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nexodus-sdk/nexodus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `usage: nxcat [flags] listen [-echo] PORT | dial HOST:PORT | status [-o json] [-wait N]

flags:
`

// run is main without the process: testable, and every exit path returns a code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("nxcat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	control := fs.String("control", getenv("NEXODUS_URL"), "coordinator URL (env NEXODUS_URL)")
	authKey := fs.String("authkey", getenv("NEXODUS_AUTHKEY"), "registration key (env NEXODUS_AUTHKEY)")
	hostname := fs.String("hostname", "", "this node's hostname on the mesh (default: the machine's)")
	state := fs.String("state", "", "state directory; empty = ephemeral node")
	port := fs.Int("port", 0, "UDP port for WireGuard (0 = any free port)")
	verbose := fs.Bool("v", false, "log what the node does to stderr")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the node to come up")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return 2
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	node := &nexodus.Node{
		ControlURL: *control,
		AuthKey:    *authKey,
		Hostname:   *hostname,
		StateDir:   *state,
		ListenPort: *port,
		Logger:     logger,
	}
	defer node.Close()

	upCtx, cancel := context.WithTimeout(ctx, *timeout)
	_, err := node.Up(upCtx)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "nxcat: %v\n", err)
		return 1
	}

	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "listen":
		err = listen(ctx, node, rest, stdout, stderr)
	case "dial":
		err = dial(ctx, node, rest, stdin, stdout)
	case "status":
		err = status(ctx, node, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "nxcat: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "nxcat: %v\n", err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "nxcat: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// listen serves TCP on the tunnel: each connection's bytes go to stdout, and back to the
// sender with -echo. It runs until ctx ends.
func listen(ctx context.Context, node *nexodus.Node, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	echo := fs.Bool("echo", false, "send what is received back to the sender")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		return usageError{"listen takes one PORT"}
	}
	port, err := strconv.Atoi(fs.Arg(0))
	if err != nil || port < 1 || port > 65535 {
		return usageError{fmt.Sprintf("bad port %q", fs.Arg(0))}
	}
	ln, err := node.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	st := node.Status()
	fmt.Fprintf(stderr, "nxcat: listening on %s:%d and [%s]:%d\n", st.TunnelIPv4, port, st.TunnelIPv6, port)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	out := &lockedWriter{w: stdout}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go serve(c, out, *echo)
	}
}

func serve(c net.Conn, out io.Writer, echo bool) {
	defer c.Close()
	var w io.Writer = out
	if echo {
		w = io.MultiWriter(out, c)
	}
	io.Copy(w, c)
}

// dial copies stdin to the peer and the peer's bytes to stdout until both directions end.
func dial(ctx context.Context, node *nexodus.Node, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError{"dial takes one HOST:PORT"}
	}
	c, err := node.Dial(ctx, "tcp", args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, stdin)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		sent <- err
	}()
	_, err = io.Copy(stdout, c)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read from %s: %w", args[0], err)
	}
	// The peer closed; stdin may still be open (a terminal), so don't wait for it.
	select {
	case err := <-sent:
		if err != nil {
			return fmt.Errorf("send to %s: %w", args[0], err)
		}
	default:
	}
	return nil
}

// status prints the peer table, after waiting up to -wait for that many peers to appear.
func status(ctx context.Context, node *nexodus.Node, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("o", "table", "output format: table or json")
	wait := fs.Int("wait", 0, "wait until at least this many peers have a handshake")
	waitFor := fs.Duration("wait-timeout", 30*time.Second, "how long -wait waits")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *format != "table" && *format != "json" {
		return usageError{fmt.Sprintf("unknown output format %q", *format)}
	}
	var waitErr error
	if *wait > 0 {
		// On a timeout the table is still printed: which peers have no path, and why, is
		// what the caller needs then.
		waitErr = waitPeers(ctx, node, *wait, *waitFor)
	}
	if err := printStatus(node.Status(), *format, stdout); err != nil {
		return err
	}
	return waitErr
}

func printStatus(st *nexodus.Status, format string, stdout io.Writer) error {
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(stdout, "%s  %s  %s  device %s\n\n", st.Hostname, st.TunnelIPv4, st.TunnelIPv6, st.DeviceID)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOSTNAME\tIPV4\tIPV6\tPATH\tENDPOINT\tHANDSHAKE\tRX\tTX")
	for _, p := range st.Peers {
		hs := "-"
		if !p.LastHandshake.IsZero() {
			hs = time.Since(p.LastHandshake).Round(time.Second).String() + " ago"
		}
		ep := "-"
		if p.Endpoint.IsValid() {
			ep = p.Endpoint.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", p.Hostname, p.TunnelIPv4, p.TunnelIPv6,
			p.Path, ep, hs, p.RxBytes, p.TxBytes)
	}
	return tw.Flush()
}

// settled reports whether NAT traversal has finished deciding a peer's path: WireGuard may
// already work over a published endpoint while ICE is still checking pairs.
func settled(traversal string) bool {
	return !strings.HasPrefix(traversal, "offering") && !strings.HasPrefix(traversal, "checking")
}

// waitPeers pings every peer until n of them have a working, settled path, or the time runs out.
func waitPeers(ctx context.Context, node *nexodus.Node, n int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		up := 0
		for _, p := range node.Peers() {
			if p.Path != nexodus.PathNone && settled(p.Traversal) {
				up++
				continue
			}
			// A UDP datagram to the peer starts a WireGuard handshake.
			if c, err := node.Dial(ctx, "udp", net.JoinHostPort(p.TunnelIPv4.String(), "9")); err == nil {
				c.Write([]byte{0})
				c.Close()
			}
		}
		if up >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d peers connected: %w", up, n, ctx.Err())
		case <-tick.C:
		}
	}
}
