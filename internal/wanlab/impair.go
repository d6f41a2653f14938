//go:build linux

package wanlab

// impair.go holds Queue: one NFQUEUE that this process serves, holding every packet the kernel
// queues to it for a delay and dropping a fraction — netem's delay and loss, for kernels built
// without sch_netem. The kernel hands over each packet's id only (no packet bytes); packets are
// released in arrival order with one batch verdict per release.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Impairment is what a Queue does to each packet it is handed.
type Impairment struct {
	Delay time.Duration // how long every packet is held
	Loss  float64       // fraction of packets dropped, in [0, 1]
}

// QueueStats counts what a Queue did.
type QueueStats struct {
	Received uint64 // packets the kernel queued to us
	Dropped  uint64 // packets we dropped on purpose (Impairment.Loss)
}

// queueMaxLen is the kernel-side queue length asked for: above what 150 ms at 1 Gbit/s holds.
const queueMaxLen = 1 << 16

// socketBuffer is the netlink socket's receive buffer: packet messages are small (metadata
// only), but a burst of a bulk transfer must not overflow it, or the kernel drops the packets.
const socketBuffer = 32 << 20

// held is a packet waiting for its release.
type held struct {
	id  uint32
	due time.Time
}

// Queue serves one NFQUEUE queue number in the network namespace it was opened in.
type Queue struct {
	num uint16
	f   *os.File
	rc  syscall.RawConn

	delay atomic.Int64  // time.Duration
	loss  atomic.Uint64 // math.Float64bits of the loss fraction

	received, dropped atomic.Uint64

	mu      sync.Mutex
	pending []held // in arrival order, which is id order; released up to head
	head    int
	wake    chan struct{}
	err     error // first error of the serving goroutines

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// OpenQueue binds queue number num in the network namespace of the calling thread (run it
// inside the namespace, e.g. with natlab's Host.Do) and starts serving it with imp. ctx bounds
// the configuration exchange with the kernel. Close stops it.
func OpenQueue(ctx context.Context, num uint16, imp Impairment) (*Queue, error) {
	if imp.Loss < 0 || imp.Loss > 1 || imp.Delay < 0 {
		return nil, fmt.Errorf("wanlab: impairment %+v out of range", imp)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("wanlab: netlink socket: %w", err)
	}
	if err := setupSocket(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "nfqueue") // non-blocking: served by the runtime poller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wanlab: netlink socket: %w", err)
	}
	q := &Queue{num: num, f: f, rc: rc, wake: make(chan struct{}, 1), done: make(chan struct{})}
	q.SetImpairment(imp)
	if err := q.configure(ctx); err != nil {
		f.Close()
		return nil, err
	}
	q.wg.Add(2)
	go q.receive()
	go q.release()
	return q, nil
}

func setupSocket(fd int) error {
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("wanlab: bind netlink socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer); err != nil {
		return fmt.Errorf("wanlab: netlink receive buffer: %w", err)
	}
	// Overruns are counted by the kernel (as drops) rather than reported to every reader.
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1); err != nil {
		return fmt.Errorf("wanlab: netlink no-enobufs: %w", err)
	}
	return nil
}

// configure binds the queue and sets metadata-only copies and the queue length, waiting for
// the kernel's acknowledgement of each.
func (q *Queue) configure(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	if err := q.f.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("wanlab: netlink deadline: %w", err)
	}
	defer q.f.SetReadDeadline(time.Time{})
	buf := make([]byte, 1<<16)
	for i, msg := range [][]byte{bindMessage(1, q.num), paramsMessage(2, q.num, queueMaxLen)} {
		seq := uint32(i + 1)
		if err := q.send(msg); err != nil {
			return err
		}
		if err := q.awaitAck(buf, seq); err != nil {
			return fmt.Errorf("wanlab: configure queue %d: %w", q.num, err)
		}
	}
	return nil
}

func (q *Queue) awaitAck(buf []byte, seq uint32) error {
	var evs []nlEvent
	for {
		n, err := q.read(buf)
		if err != nil {
			return err
		}
		evs, err = parseMessages(evs[:0], buf[:n])
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.ack && ev.seq == seq {
				if ev.errno != 0 {
					return syscall.Errno(ev.errno)
				}
				return nil
			}
		}
	}
}

// SetImpairment changes what happens to packets from now on; packets already held keep their
// release time.
func (q *Queue) SetImpairment(imp Impairment) {
	q.delay.Store(int64(imp.Delay))
	q.loss.Store(math.Float64bits(min(max(imp.Loss, 0), 1)))
}

// Stats returns the counters so far.
func (q *Queue) Stats() QueueStats {
	return QueueStats{Received: q.received.Load(), Dropped: q.dropped.Load()}
}

// Err returns the first error that stopped serving the queue, nil while it is served.
func (q *Queue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// Close stops serving the queue and closes the socket; the kernel drops the packets still
// held. It waits for the serving goroutines. A second call returns nil.
func (q *Queue) Close() error {
	var err error
	q.closeOnce.Do(func() {
		close(q.done)
		err = q.f.Close()
		q.wg.Wait()
	})
	if err != nil {
		return fmt.Errorf("wanlab: close queue: %w", err)
	}
	return nil
}

func (q *Queue) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
	}
}

func (q *Queue) closed() bool {
	select {
	case <-q.done:
		return true
	default:
		return false
	}
}

// receive reads the packet messages: a packet to drop gets its verdict at once, the others are
// queued for release.
func (q *Queue) receive() {
	defer q.wg.Done()
	buf := make([]byte, 1<<16)
	var evs []nlEvent
	for {
		n, err := q.read(buf)
		if err != nil {
			if !q.closed() {
				q.fail(err)
			}
			return
		}
		evs, err = parseMessages(evs[:0], buf[:n])
		if err != nil {
			q.fail(err)
		}
		for _, ev := range evs {
			if !ev.packet {
				continue
			}
			q.received.Add(1)
			if loss := math.Float64frombits(q.loss.Load()); loss > 0 && rand.Float64() < loss {
				q.dropped.Add(1)
				if err := q.send(verdictMessage(q.num, ev.id, nfDrop, false)); err != nil && !q.closed() {
					q.fail(err)
				}
				continue
			}
			q.hold(ev.id, time.Now().Add(time.Duration(q.delay.Load())))
		}
	}
}

func (q *Queue) hold(id uint32, due time.Time) {
	q.mu.Lock()
	wasEmpty := len(q.pending) == q.head
	q.pending = append(q.pending, held{id: id, due: due})
	q.mu.Unlock()
	if wasEmpty {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// release accepts held packets once they are due: every due packet at once, with one batch
// verdict for the newest of them (the dropped ones older than it have had theirs already).
func (q *Queue) release() {
	defer q.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		if len(q.pending) == q.head {
			q.pending, q.head = q.pending[:0], 0
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.done:
				return
			}
		}
		due := q.pending[q.head].due
		q.mu.Unlock()
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-q.done:
				return
			}
		}
		q.mu.Lock()
		now := time.Now()
		n := q.head
		for n < len(q.pending) && !q.pending[n].due.After(now) {
			n++
		}
		if n == q.head {
			q.mu.Unlock()
			continue
		}
		last := q.pending[n-1].id
		q.head = n
		if q.head > len(q.pending)/2 { // compact now and then, not on every release
			q.pending = q.pending[:copy(q.pending, q.pending[q.head:])]
			q.head = 0
		}
		q.mu.Unlock()
		if err := q.send(verdictMessage(q.num, last, nfAccept, true)); err != nil {
			if !q.closed() {
				q.fail(err)
			}
			return
		}
	}
}

func (q *Queue) read(buf []byte) (int, error) {
	var n int
	var rerr error
	err := q.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return 0, fmt.Errorf("wanlab: read netlink: %w", err)
	}
	if rerr != nil {
		if errors.Is(rerr, unix.ENOBUFS) {
			return 0, nil // an overrun the kernel counted; nothing to parse
		}
		return 0, fmt.Errorf("wanlab: read netlink: %w", rerr)
	}
	return n, nil
}

func (q *Queue) send(msg []byte) error {
	var serr error
	err := q.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("wanlab: send netlink: %w", err)
	}
	return nil
}
