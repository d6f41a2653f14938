//go:build linux

package labtest

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// helperEnv turns the test binary into one of this package's helpers (see runHelper); the lab
// runs it inside a namespace by re-executing the binary.
const helperEnv = "LABTEST_HELPER"

// bins are the example binaries, built once by TestMain when the lab can run.
var bins struct {
	dir      string
	err      error  // building the required binaries failed
	skip     string // why they were not built (the lab cannot run here)
	relay    string // path of the relay binary, "" when examples/relay is missing or broken
	relayWhy string // why there is no relay binary
	// Coordinator flags that exist in this tree (other work adds them).
	coordFlags map[string]bool
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	flag.Parse()
	if why := labUnavailable(); why != "" {
		bins.skip = why
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "labtest-bin-")
	if err != nil {
		bins.err = err
	} else {
		bins.dir = dir
		bins.err = buildBinaries(dir)
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// labUnavailable says why the NAT lab cannot run here ("" when it can). natlab.New makes the
// same checks and skips (or fails under NATLAB_REQUIRE=1) with its own message; this only
// avoids building binaries that no test would use.
func labUnavailable() string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("not root (uid %d)", os.Geteuid())
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err == nil {
			continue
		}
		found := false
		for _, d := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(d, tool)); err == nil {
				found = true
			}
		}
		if !found {
			return tool + " not found"
		}
	}
	return ""
}

// buildBinaries builds the example programs into dir from the module root. The relay is built
// on its own: while it does not exist (or does not build) the cases that need it skip.
func buildBinaries(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("go env GOMOD: not inside a module")
	}
	root := filepath.Dir(gomod)
	build := func(pkgs ...string) error {
		cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
		}
		return nil
	}
	if err := build("./examples/coordinator", "./examples/nexctl", "./examples/nxcat"); err != nil {
		return err
	}
	if m, _ := filepath.Glob(filepath.Join(root, "examples/relay/*.go")); len(m) == 0 {
		bins.relayWhy = "examples/relay does not exist yet"
	} else if err := build("./examples/relay"); err != nil {
		bins.relayWhy = fmt.Sprintf("examples/relay does not build: %v", err)
	} else {
		bins.relay = filepath.Join(dir, "relay")
	}
	// Which optional flags does this coordinator have? ("-h" prints the flag set.)
	help, _ := exec.Command(filepath.Join(dir, "coordinator"), "-h").CombinedOutput()
	bins.coordFlags = map[string]bool{}
	for _, f := range []string{"stun-servers", "turn-servers", "relay-secret"} {
		bins.coordFlags[f] = strings.Contains(string(help), "-"+f+" ")
	}
	return nil
}

// bin returns the path of a built example binary, failing or skipping t when there is none.
func bin(t testing.TB, name string) string {
	t.Helper()
	switch {
	case bins.skip != "":
		t.Skipf("labtest: example binaries not built: %s", bins.skip)
	case bins.err != nil:
		t.Fatalf("labtest: building the example binaries: %v", bins.err)
	}
	return filepath.Join(bins.dir, name)
}

// runHelper runs a helper mode of the test binary and returns the exit code.
//
//	stun -listen IP:PORT[,IP:PORT...]   answer STUN Binding requests on each UDP address
func runHelper(mode string, args []string) int {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	listen := fs.String("listen", "", "comma-separated UDP addresses")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	switch mode {
	case "stun":
		err = stunServe(strings.Split(*listen, ","))
	default:
		err = fmt.Errorf("unknown helper %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "labtest helper %s: %v\n", mode, err)
		return 1
	}
	return 0
}

// stunServe is a minimal STUN server (RFC 5389 Binding only): a stand-in for the relay's STUN
// side while examples/relay does not exist. NAT-type detection needs two server addresses.
func stunServe(addrs []string) error {
	errc := make(chan error, len(addrs))
	var ready []string
	for _, a := range addrs {
		pc, err := net.ListenPacket("udp4", a)
		if err != nil {
			return err
		}
		ready = append(ready, pc.LocalAddr().String())
		go func() { errc <- stunLoop(pc) }()
	}
	fmt.Printf("stun ready %s\n", strings.Join(ready, ","))
	return <-errc
}

func stunLoop(pc net.PacketConn) error {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if err := req.Decode(); err != nil || req.Type != stun.BindingRequest {
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port}, stun.Fingerprint)
		if err != nil {
			continue
		}
		_, _ = pc.WriteTo(resp.Raw, from)
	}
}

// stunBinding sends one STUN Binding request from a fresh socket in h's namespace to server
// and returns the mapped address it reports.
func stunBinding(h interface {
	ListenUDP(int) (*net.UDPConn, error)
}, server netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	c, err := h.ListenUDP(0)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer c.Close()
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if _, err := c.WriteToUDPAddrPort(req.Raw, server); err != nil {
		return netip.AddrPort{}, err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return netip.AddrPort{}, err
		}
		resp := &stun.Message{Raw: buf[:n]}
		if resp.Decode() != nil || resp.TransactionID != req.TransactionID {
			continue
		}
		var xor stun.XORMappedAddress
		if err := xor.GetFrom(resp); err != nil {
			return netip.AddrPort{}, err
		}
		ip, ok := netip.AddrFromSlice(xor.IP)
		if !ok {
			return netip.AddrPort{}, fmt.Errorf("bad mapped IP %v", xor.IP)
		}
		return netip.AddrPortFrom(ip.Unmap(), uint16(xor.Port)), nil
	}
}
