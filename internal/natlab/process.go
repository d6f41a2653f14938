//go:build linux

package natlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program started inside a lab namespace. Its stdout and stderr are logged line by
// line with t.Log (prefixed with host and program) and kept for WaitLine and Output. The lab
// stops it at cleanup.
type Process struct {
	host  *Host
	label string
	cmd   *exec.Cmd

	mu      sync.Mutex
	lines   []line
	partial map[string][]byte
	notify  chan struct{} // closed and replaced whenever lines or state change
	done    chan struct{}
	err     error
}

type line struct {
	stream string
	text   string
}

// Start runs a program in the background inside the host's namespace. It fails the test if the
// program cannot be started. The process is killed when ctx is done or the lab closes.
func (h *Host) Start(ctx context.Context, name string, args ...string) *Process {
	h.lab.t.Helper()
	return h.StartCmd(h.Command(ctx, name, args...))
}

// StartCmd starts a command made by h.Command (after the caller set Env, Dir and so on). Stdout
// and Stderr must be unset: the Process captures them.
func (h *Host) StartCmd(cmd *exec.Cmd) *Process {
	h.lab.t.Helper()
	p, err := h.startCmd(cmd, "")
	if err != nil {
		h.lab.t.Fatalf("natlab: %v", err)
	}
	return p
}

func (h *Host) startCmd(cmd *exec.Cmd, prog string) (*Process, error) {
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, errors.New("StartCmd: Stdout and Stderr must be unset")
	}
	if prog == "" && len(cmd.Args) > 4 { // ip netns exec NS prog ...
		prog = filepath.Base(cmd.Args[4])
	}
	p := &Process{
		host:    h,
		label:   h.name + "/" + prog,
		cmd:     cmd,
		partial: map[string][]byte{},
		notify:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	cmd.Stdout = streamWriter{p, "stdout"}
	cmd.Stderr = streamWriter{p, "stderr"}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	h.lab.mu.Lock()
	if h.lab.closed {
		h.lab.mu.Unlock()
		return nil, errors.New("lab is closed")
	}
	if err := cmd.Start(); err != nil {
		h.lab.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), err)
	}
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		for stream, rest := range p.partial {
			if len(rest) > 0 {
				p.addLineLocked(stream, string(rest))
			}
		}
		p.partial = nil
		p.err = err
		close(p.done)
		p.wakeLocked()
		p.mu.Unlock()
	}()
	return p, nil
}

type streamWriter struct {
	p      *Process
	stream string
}

func (w streamWriter) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	buf := append(p.partial[w.stream], b...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		p.addLineLocked(w.stream, string(bytes.TrimSuffix(buf[:i], []byte("\r"))))
		buf = buf[i+1:]
	}
	p.partial[w.stream] = append([]byte(nil), buf...)
	return len(b), nil
}

func (p *Process) addLineLocked(stream, text string) {
	p.lines = append(p.lines, line{stream, text})
	p.host.lab.t.Logf("[%s %s] %s", p.label, stream, text)
	p.wakeLocked()
}

func (p *Process) wakeLocked() {
	close(p.notify)
	p.notify = make(chan struct{})
}

// Pid is the process ID (in the host's PID namespace).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.exitErr()
}

func (p *Process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("%s: %w", strings.Join(p.cmd.Args, " "), p.err)
	}
	return nil
}

// Signal sends sig to the process's process group.
func (p *Process) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Stop ends the process: SIGTERM to its process group, SIGKILL if it has not exited after a few
// seconds. It returns the exit error (a signal exit is expected and not reported).
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(3 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.Signal(syscall.SIGKILL)
		<-p.done
	}
	err := p.exitErr()
	var ee *exec.ExitError
	if errors.As(err, &ee) && !ee.Exited() {
		return nil
	}
	return err
}

// Output returns everything the process has written so far, stdout and stderr interleaved.
func (p *Process) Output() string { return p.text("") }

// Stdout returns what the process has written to stdout so far.
func (p *Process) Stdout() string { return p.text("stdout") }

func (p *Process) text(stream string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		if stream == "" || l.stream == stream {
			b.WriteString(l.text)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// WaitLine waits for the first output line (stdout or stderr, from the start of the process)
// for which match returns true, and returns it. It fails when ctx is done or the process exits
// first; the error includes the output.
func (p *Process) WaitLine(ctx context.Context, match func(line string) bool) (string, error) {
	next := 0
	for {
		p.mu.Lock()
		for ; next < len(p.lines); next++ {
			if match(p.lines[next].text) {
				l := p.lines[next].text
				p.mu.Unlock()
				return l, nil
			}
		}
		exited := p.partial == nil
		notify := p.notify
		p.mu.Unlock()
		if exited {
			err := p.exitErr()
			if err == nil {
				err = fmt.Errorf("%s: exited", strings.Join(p.cmd.Args, " "))
			}
			return "", fmt.Errorf("%w before the awaited line; output:\n%s", err, p.Output())
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return "", fmt.Errorf("%s: %w while waiting for a line; output so far:\n%s",
				strings.Join(p.cmd.Args, " "), ctx.Err(), p.Output())
		}
	}
}

// WaitFor waits for an output line containing substr; see WaitLine.
func (p *Process) WaitFor(ctx context.Context, substr string) (string, error) {
	return p.WaitLine(ctx, func(l string) bool { return strings.Contains(l, substr) })
}

// helperExe is the running test binary, re-executed as a helper.
func helperExe() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("natlab: locate test binary: %w", err)
	}
	return exe, nil
}

// HelperCommand returns a command that runs one of this package's helpers (HelperUDPEcho, ...)
// inside the host's namespace by re-executing the current binary, which must import natlab
// (any test binary of a package that uses natlab does).
func (h *Host) HelperCommand(ctx context.Context, helper string, args ...string) (*exec.Cmd, error) {
	exe, err := helperExe()
	if err != nil {
		return nil, err
	}
	cmd := h.Command(ctx, exe, args...)
	cmd.Env = append(os.Environ(), HelperEnv+"="+helper)
	return cmd, nil
}

// StartHelper starts a built-in helper in the background; see HelperCommand.
func (h *Host) StartHelper(ctx context.Context, helper string, args ...string) *Process {
	h.lab.t.Helper()
	cmd, err := h.HelperCommand(ctx, helper, args...)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	p, err := h.startCmd(cmd, helper)
	if err != nil {
		h.lab.t.Fatalf("natlab: %v", err)
	}
	return p
}

// RunHelper runs a built-in helper to completion and returns its combined output.
func (h *Host) RunHelper(ctx context.Context, helper string, args ...string) ([]byte, error) {
	cmd, err := h.HelperCommand(ctx, helper, args...)
	if err != nil {
		return nil, err
	}
	return runCmd(cmd, nil)
}
