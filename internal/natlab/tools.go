//go:build linux

// tools.go holds how the lab runs the programs it is built with: finding ip and nft, running
// a command with its output in the error, and batches of ip commands in a namespace.

package natlab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not in PATH nor in /usr/sbin, /sbin", name)
}

func isPermission(out string) bool {
	out = strings.ToLower(out)
	return strings.Contains(out, "operation not permitted") || strings.Contains(out, "permission denied")
}

// cmd runs a command and returns its combined output; the error names the command and
// includes the output.
func (l *Lab) cmd(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runCmd(exec.CommandContext(ctx, name, args...), nil)
}

func runCmd(c *exec.Cmd, stdin []byte) ([]byte, error) {
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	out, err := c.CombinedOutput()
	if err != nil {
		in := ""
		if stdin != nil {
			in = fmt.Sprintf("\nstdin:\n%s", stdin)
		}
		return out, fmt.Errorf("%s: %w%s\noutput:\n%s", strings.Join(c.Args, " "), err, in, out)
	}
	return out, nil
}

// ipBatch runs ip commands inside namespace ns in one ip process.
func (l *Lab) ipBatch(ns string, cmds ...string) error {
	c := exec.Command(l.ipBin, "-n", ns, "-batch", "-")
	_, err := runCmd(c, []byte(strings.Join(cmds, "\n")+"\n"))
	return err
}
