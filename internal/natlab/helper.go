//go:build linux

package natlab

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// HelperEnv names the environment variable that turns a binary importing natlab into one of the
// helpers below: this package's init runs the helper with os.Args[1:] and exits.
const HelperEnv = "NATLAB_HELPER"

// Built-in helpers, run with Host.StartHelper or Host.RunHelper.
const (
	// HelperUDPEcho serves UDP and TCP on -listen (default ":7000"). Each UDP datagram is
	// answered with the sender's address as text ("ip:port"); each TCP connection gets the
	// peer's address and a newline, then is closed. It prints "ready udp=ADDR tcp=ADDR" once
	// both listen.
	HelperUDPEcho = "udp-echo"
	// HelperUDPProbe sends from ONE UDP socket (-local port, default 0) to each target
	// address given as an argument in turn, retransmitting every 100ms until the target
	// answers or -timeout (default 3s) passes. It prints "local=ADDR" and then
	// "target=T mapped=M" per target, M being the address the target saw; it exits 1 on the
	// first target that does not answer.
	HelperUDPProbe = "udp-probe"
	// HelperUDPStream sends to one target from one socket every -interval (default 50ms)
	// until killed, and prints "mapped=M" whenever the address the target reports changes.
	HelperUDPStream = "udp-stream"
	// HelperTCPProbe connects to the target, reads one line and prints "target=T mapped=M";
	// it exits 1 when that fails within -timeout (default 3s).
	HelperTCPProbe = "tcp-probe"
)

func init() {
	if mode := os.Getenv(HelperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:], os.Stdout, os.Stderr))
	}
}

func runHelper(mode string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":7000", "udp-echo: listen address")
	local := fs.Int("local", 0, "local UDP port")
	timeout := fs.Duration("timeout", 3*time.Second, "per-target timeout")
	interval := fs.Duration("interval", 50*time.Millisecond, "udp-stream: send interval")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	switch mode {
	case HelperUDPEcho:
		err = udpEcho(*listen, stdout)
	case HelperUDPProbe:
		err = udpProbe(*local, *timeout, fs.Args(), stdout)
	case HelperUDPStream:
		if fs.NArg() != 1 {
			err = errors.New("want exactly one target")
			break
		}
		err = udpStream(*local, *interval, fs.Arg(0), stdout)
	case HelperTCPProbe:
		if fs.NArg() != 1 {
			err = errors.New("want exactly one target")
			break
		}
		err = tcpProbe(*timeout, fs.Arg(0), stdout)
	default:
		err = fmt.Errorf("unknown helper %q", mode)
	}
	if err != nil {
		fmt.Fprintf(stderr, "natlab helper %s: %v\n", mode, err)
		return 1
	}
	return 0
}

func udpEcho(listen string, stdout io.Writer) error {
	pc, err := net.ListenPacket("udp4", listen)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready udp=%s tcp=%s\n", pc.LocalAddr(), ln.Addr())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	buf := make([]byte, 2048)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := pc.WriteTo([]byte(from.String()), from); err != nil {
			return err
		}
	}
}

func resolveTargets(targets []string) ([]*net.UDPAddr, error) {
	if len(targets) == 0 {
		return nil, errors.New("no targets")
	}
	var out []*net.UDPAddr
	for _, t := range targets {
		a, err := net.ResolveUDPAddr("udp4", t)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func udpProbe(local int, timeout time.Duration, targets []string, stdout io.Writer) error {
	addrs, err := resolveTargets(targets)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: local})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(stdout, "local=%s\n", c.LocalAddr())
	buf := make([]byte, 2048)
	for _, to := range addrs {
		deadline := time.Now().Add(timeout)
		got := ""
		for got == "" {
			if time.Now().After(deadline) {
				return fmt.Errorf("timeout: no reply from %s within %s", to, timeout)
			}
			if _, err := c.WriteToUDP([]byte("probe"), to); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			for {
				n, from, err := c.ReadFromUDP(buf)
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						break
					}
					return err
				}
				if from.IP.Equal(to.IP) && from.Port == to.Port {
					got = string(buf[:n])
					break
				}
			}
		}
		fmt.Fprintf(stdout, "target=%s mapped=%s\n", to, got)
	}
	return nil
}

func udpStream(local int, interval time.Duration, target string, stdout io.Writer) error {
	addrs, err := resolveTargets([]string{target})
	if err != nil {
		return err
	}
	to := addrs[0]
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: local})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(stdout, "local=%s\n", c.LocalAddr())
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for range t.C {
			// Errors are transient here (no route while a host moves); keep sending.
			_, _ = c.WriteToUDP([]byte("probe"), to)
		}
	}()
	last := ""
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		if !from.IP.Equal(to.IP) || from.Port != to.Port {
			continue
		}
		if m := string(buf[:n]); m != last {
			last = m
			fmt.Fprintf(stdout, "mapped=%s\n", m)
		}
	}
}

func tcpProbe(timeout time.Duration, target string, stdout io.Writer) error {
	c, err := net.DialTimeout("tcp4", target, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(timeout))
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read from %s: %w", target, err)
	}
	fmt.Fprintf(stdout, "target=%s mapped=%s\n", target, strings.TrimSpace(l))
	return nil
}

// ParseMapped extracts M from a helper's "... mapped=M" output line for target (or from the
// first such line when target is empty).
func ParseMapped(output, target string) (string, bool) {
	for _, l := range strings.Split(output, "\n") {
		if target != "" && !strings.Contains(l, "target="+target+" ") {
			continue
		}
		if i := strings.Index(l, "mapped="); i >= 0 {
			if f := strings.Fields(l[i+len("mapped="):]); len(f) > 0 {
				return f[0], true
			}
		}
	}
	return "", false
}
