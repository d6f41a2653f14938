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
	"github.com/stretchr/testify/require"
)

// bins are the example binaries, built once by TestMain when the lab can run.
var bins struct {
	dir  string
	err  error  // building them failed: every case fails
	skip string // why they were not built (the lab cannot run here)
}

func TestMain(m *testing.M) {
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

// buildBinaries builds the example programs into dir from the module root. Every case needs
// them, the relay included (it is the lab's STUN server too): a build failure fails the cases.
func buildBinaries(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("go env GOMOD: not inside a module")
	}
	pkgs := []string{"./examples/coordinator", "./examples/nexctl", "./examples/nxcat", "./examples/relay"}
	cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
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
		require.NoError(t, bins.err, "labtest: building the example binaries")
	}
	return filepath.Join(bins.dir, name)
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
