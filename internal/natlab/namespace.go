//go:build linux

// namespace.go holds the life of a lab's network namespaces: creating one with the settings
// every lab namespace gets, deleting one with whatever still runs in it, and sweeping those
// that dead test processes left behind.

package natlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// addNamespace creates a namespace (recording it before creation so cleanup always sees it),
// brings loopback up and sets the namespace-local sysctls every lab namespace gets.
func (l *Lab) addNamespace(ns string) ([]byte, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab is closed")
	}
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	if out, err := l.cmd(context.Background(), l.ipBin, "netns", "add", ns); err != nil {
		return out, err
	}
	if err := l.ipBatch(ns, "link set lo up"); err != nil {
		return nil, err
	}
	err := doInNetns(ns, func() error {
		for file, val := range map[string]string{
			"/proc/sys/net/ipv6/conf/all/disable_ipv6":      "1",
			"/proc/sys/net/ipv6/conf/default/disable_ipv6":  "1",
			"/proc/sys/net/bridge/bridge-nf-call-iptables":  "0",
			"/proc/sys/net/bridge/bridge-nf-call-ip6tables": "0",
			"/proc/sys/net/bridge/bridge-nf-call-arptables": "0",
		} {
			if err := writeSysctl(file, val); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	return nil, err
}

func writeSysctl(file, val string) error {
	if err := os.WriteFile(file, []byte(val), 0); err != nil {
		return fmt.Errorf("write %s=%s: %w", file, val, err)
	}
	return nil
}

// deleteNamespace kills whatever still runs in ns and deletes it. A namespace that does not
// exist is not an error.
func deleteNamespace(ipBin, ns string) error {
	if _, err := os.Stat(netnsDir + "/" + ns); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.Command(ipBin, "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if _, err := runCmd(exec.Command(ipBin, "netns", "delete", ns), nil); err != nil {
		if _, serr := os.Stat(netnsDir + "/" + ns); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return nil
}

// Sweep deletes namespaces left behind by lab processes that are no longer running (their
// names carry the creating process's PID). New calls it once per process.
func Sweep() error {
	ipBin, err := findTool("ip")
	if err != nil {
		return err
	}
	return sweep(ipBin)
}

func sweep(ipBin string) error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := deleteNamespace(ipBin, e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownerPID parses the PID out of a lab namespace name "nxl-<pid>-<tag>-<n>-<name>".
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok {
		return 0, false
	}
	parts := strings.SplitN(rest, "-", 4)
	if len(parts) != 4 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
