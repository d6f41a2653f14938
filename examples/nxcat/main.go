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
	// The command and its arguments are checked before the node registers: a typo fails at
	// once, without a device made on the coordinator.
	cmd, err := parseCommand(fs.Arg(0), fs.Args()[1:], stderr)
	var ue usageError
	switch {
	case errors.As(err, &ue) && ue.unknown:
		fmt.Fprintf(stderr, "nxcat: %v\n", err)
		fs.Usage()
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "nxcat: %v\n", err)
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
	_, err = node.Up(upCtx)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "nxcat: %v\n", err)
		return 1
	}
	// A node the coordinator cuts off (device deleted, token revoked) ends the command.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-node.Done():
			stop()
		case <-ctx.Done():
		}
	}()
	err = cmd(ctx, node, stdin, stdout, stderr)
	if cut := node.Err(); errors.Is(cut, nexodus.ErrCutOff) {
		fmt.Fprintf(stderr, "nxcat: %v\n", cut)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "nxcat: %v\n", err)
		return 1
	}
	return 0
}

// usageError is a command line that cannot run; unknown: the command itself is unknown.
type usageError struct {
	msg     string
	unknown bool
}

func (e usageError) Error() string { return e.msg }

// command runs a parsed subcommand on a node that is up.
type command func(ctx context.Context, node *nexodus.Node, stdin io.Reader, stdout, stderr io.Writer) error

// parseCommand checks a subcommand and its arguments (errors are usageErrors) and returns what
// runs it.
func parseCommand(name string, args []string, stderr io.Writer) (command, error) {
	switch name {
	case "listen":
		port, echo, err := parseListen(args, stderr)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, node *nexodus.Node, _ io.Reader, stdout, stderr io.Writer) error {
			return listen(ctx, node, port, echo, stdout, stderr)
		}, nil
	case "dial":
		if len(args) != 1 {
			return nil, usageError{msg: "dial takes one HOST:PORT"}
		}
		if _, _, err := net.SplitHostPort(args[0]); err != nil {
			return nil, usageError{msg: fmt.Sprintf("dial: %v", err)}
		}
		return func(ctx context.Context, node *nexodus.Node, stdin io.Reader, stdout, _ io.Writer) error {
			return dial(ctx, node, args[0], stdin, stdout)
		}, nil
	case "status":
		opts, err := parseStatus(args, stderr)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, node *nexodus.Node, _ io.Reader, stdout, _ io.Writer) error {
			return status(ctx, node, opts, stdout)
		}, nil
	}
	return nil, usageError{msg: fmt.Sprintf("unknown command %q", name), unknown: true}
}

func parseListen(args []string, stderr io.Writer) (port int, echo bool, err error) {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := fs.Bool("echo", false, "send what is received back to the sender")
	if err := fs.Parse(args); err != nil {
		return 0, false, usageError{msg: err.Error()}
	}
	if fs.NArg() != 1 {
		return 0, false, usageError{msg: "listen takes one PORT"}
	}
	port, err = strconv.Atoi(fs.Arg(0))
	if err != nil || port < 1 || port > 65535 {
		return 0, false, usageError{msg: fmt.Sprintf("bad port %q", fs.Arg(0))}
	}
	return port, *e, nil
}

// listen serves TCP on the tunnel: each connection's bytes go to stdout, and back to the
// sender with echo. It runs until ctx ends.
func listen(ctx context.Context, node *nexodus.Node, port int, echo bool, stdout, stderr io.Writer) error {
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
		go serve(c, out, echo)
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
func dial(ctx context.Context, node *nexodus.Node, target string, stdin io.Reader, stdout io.Writer) error {
	c, err := node.Dial(ctx, "tcp", target)
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
		return fmt.Errorf("read from %s: %w", target, err)
	}
	// The peer closed; stdin may still be open (a terminal), so don't wait for it.
	select {
	case err := <-sent:
		if err != nil {
			return fmt.Errorf("send to %s: %w", target, err)
		}
	default:
	}
	return nil
}

type statusOptions struct {
	format  string
	wait    int
	waitFor time.Duration
}

func parseStatus(args []string, stderr io.Writer) (statusOptions, error) {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o statusOptions
	fs.StringVar(&o.format, "o", "table", "output format: table or json")
	fs.IntVar(&o.wait, "wait", 0, "wait until at least this many peers have a handshake")
	fs.DurationVar(&o.waitFor, "wait-timeout", 30*time.Second, "how long -wait waits")
	if err := fs.Parse(args); err != nil {
		return o, usageError{msg: err.Error()}
	}
	if fs.NArg() != 0 {
		return o, usageError{msg: fmt.Sprintf("status takes no arguments, got %q", fs.Args())}
	}
	if o.format != "table" && o.format != "json" {
		return o, usageError{msg: fmt.Sprintf("unknown output format %q", o.format)}
	}
	return o, nil
}

// status prints the peer table, after waiting up to -wait for that many peers to appear.
func status(ctx context.Context, node *nexodus.Node, o statusOptions, stdout io.Writer) error {
	var waitErr error
	if o.wait > 0 {
		// On a timeout the table is still printed: which peers have no path, and why, is
		// what the caller needs then.
		waitErr = waitPeers(ctx, node, o.wait, o.waitFor)
	}
	if err := printStatus(node.Status(), o.format, stdout); err != nil {
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

// waitPeers pings every peer until n of them have a working, settled path, or the time runs out.
func waitPeers(ctx context.Context, node *nexodus.Node, n int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		up := 0
		for _, p := range node.Peers() {
			if p.Path != nexodus.PathNone && p.Traversal.Settled() {
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
