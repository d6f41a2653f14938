// Package quickstart tests the README's "Running a coordinator, a relay and nodes" block: it is
// extracted, its public address and ports replaced by free ones on 127.0.0.1, and run by bash as
// a user would paste it.
package quickstart

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// quickstart returns the first sh block after the heading.
func quickstart(t *testing.T, readme string) string {
	t.Helper()
	_, after, ok := strings.Cut(readme, "## Running a coordinator, a relay and nodes")
	require.True(t, ok, "README has no quickstart heading")
	_, block, ok := strings.Cut(after, "```sh\n")
	require.True(t, ok, "no sh block under the quickstart heading")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok, "unterminated sh block")
	return block
}

func freePort(t *testing.T, network string) string {
	t.Helper()
	var addr net.Addr
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		addr = c.LocalAddr()
		require.NoError(t, c.Close())
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr = l.Addr()
		require.NoError(t, l.Close())
	}
	_, port, _ := net.SplitHostPort(addr.String())
	return port
}

// freeUDPTCPPort returns a port free on 127.0.0.1 for both UDP and TCP (the relay listens on
// both at one port): a free UDP port's TCP twin may be taken, so it tries a few.
func freeUDPTCPPort(t *testing.T) string {
	t.Helper()
	for range 50 {
		port := freePort(t, "udp")
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		require.NoError(t, l.Close())
		return port
	}
	require.FailNow(t, "no port free for both UDP and TCP in 50 tries")
	return ""
}

func TestREADMEQuickstart(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "awk", "grep", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("QUICKSTART_REQUIRE") != "" {
				t.Fatalf("%s not on PATH and QUICKSTART_REQUIRE is set", tool)
			}
			t.Skipf("%s not on PATH: the quickstart needs it", tool)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	script := quickstart(t, string(readme))

	dir := t.TempDir()
	coordPort, stun1, stun2 := freePort(t, "tcp"), freeUDPTCPPort(t), freePort(t, "udp")
	script = strings.NewReplacer(
		"203.0.113.7", "127.0.0.1",
		"0.0.0.0", "127.0.0.1",
		":8080", ":"+coordPort,
		":3478", ":"+stun1,
		":3479", ":"+stun2,
		"-db nexodus.db", "-db "+filepath.Join(dir, "nexodus.db"),
		"srv.log", filepath.Join(dir, "srv.log"),
	).Replace(script)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "NEXODUS_ADMIN_TOKEN=", "NEXODUS_TOKEN=", "NEXODUS_URL=")
	// Its own process group, so the servers it leaves in the background end with the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Files, not pipes: the servers the script leaves in the background keep its output open,
	// and a pipe would make Wait wait for them.
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	require.NoError(t, err)
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	require.NoError(t, err)
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	require.NoError(t, cmd.Start())
	pgid := cmd.Process.Pid
	defer syscall.Kill(-pgid, syscall.SIGKILL)
	err = cmd.Wait()
	out, _ := os.ReadFile(stdout.Name())
	errOut, _ := os.ReadFile(stderr.Name())
	require.NoError(t, err, "quickstart failed\nstdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, string(out), "hello over the mesh", "the echo through srv\nstderr:\n%s", errOut)
	t.Logf("quickstart ran on ports %s (coordinator), %s and %s (relay); output:\n%s", coordPort, stun1, stun2, out)
}
