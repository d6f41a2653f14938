// stun.go holds the STUN client: one Binding request over the shared socket, retransmitted per
// RFC 5389, and the validation of its response.

package natt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v4"
)

// Sentinel errors of the STUN client.
var (
	// ErrSTUNTimeout: the server did not answer any of the retransmitted requests.
	ErrSTUNTimeout = errors.New("natt: STUN server did not answer")
	// ErrSTUNErrorResponse: the server answered with a Binding error response.
	ErrSTUNErrorResponse = errors.New("natt: STUN error response")
	// ErrBadSTUNResponse: a response carried our transaction ID but could not be used.
	ErrBadSTUNResponse = errors.New("natt: malformed STUN response")
)

// RFC 5389 section 7.2.1 retransmission: an initial RTO of 500 ms, doubled after each of
// Rc = 7 requests, and a final wait of Rm = 16 RTOs after the last one.
const (
	stunRTO = 500 * time.Millisecond
	stunRc  = 7
	stunRm  = 16
)

// Discover sends a STUN Binding request to server over sock (so over the data plane's socket and
// its NAT mapping) and returns the server-reflexive address: this socket's address as the server
// saw it. Requests are retransmitted per RFC 5389 until an answer, the context's end, or the
// retransmission schedule's end (about 39.5 s; ErrSTUNTimeout). The response arrives through
// sock.Deliver and is matched by transaction ID and source address.
func Discover(ctx context.Context, sock *Socket, server netip.AddrPort) (netip.AddrPort, error) {
	return discover(ctx, sock, server, stunRTO)
}

func discover(ctx context.Context, sock *Socket, server netip.AddrPort, rto time.Duration) (netip.AddrPort, error) {
	server = canonical(server)
	if !server.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("natt: STUN discover: invalid server address %v", server)
	}
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: build request: %w", server, err)
	}
	// Room for a few responses: retransmitted requests get duplicate answers, and a forged
	// packet must not crowd out the real one.
	ch := make(chan datagram, 8)
	unregister := sock.register(req.TransactionID, ch)
	defer unregister()

	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	sent, send := 0, true
	var lastErr error
	for {
		if send {
			if _, err := sock.WriteToAddrPort(req.Raw, server); err != nil {
				return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: %w", server, err)
			}
			sent++
			wait := rto << (sent - 1)
			if sent == stunRc {
				wait = rto * stunRm
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			send = false
		}
		select {
		case <-ctx.Done():
			return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: %w", server, ctx.Err())
		case <-sock.closed:
			return netip.AddrPort{}, fmt.Errorf("natt: STUN discover via %v: %w", server, net.ErrClosed)
		case d := <-ch:
			if d.from != server {
				continue // not from the server we asked: ignore, keep waiting
			}
			addr, err := parseBindingResponse(d.b, req.TransactionID)
			switch {
			case err == nil:
				return addr, nil
			case errors.Is(err, ErrSTUNErrorResponse):
				return netip.AddrPort{}, fmt.Errorf("%w (from %v)", err, server)
			default:
				// A garbled or forged packet must not end discovery: keep waiting for the real one.
				lastErr = err
			}
		case <-timer.C:
			if sent >= stunRc {
				if lastErr != nil {
					return netip.AddrPort{}, fmt.Errorf("%w: %v (last bad response: %w)", ErrSTUNTimeout, server, lastErr)
				}
				return netip.AddrPort{}, fmt.Errorf("%w: %v", ErrSTUNTimeout, server)
			}
			send = true
		}
	}
}

// parseBindingResponse validates a Binding response to transaction id and returns the mapped
// address it carries (XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from older servers).
func parseBindingResponse(b []byte, id [stun.TransactionIDSize]byte) (netip.AddrPort, error) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrBadSTUNResponse, err)
	}
	if m.TransactionID != id {
		return netip.AddrPort{}, fmt.Errorf("%w: transaction ID mismatch", ErrBadSTUNResponse)
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrBadSTUNResponse, err)
		}
	}
	switch m.Type {
	case stun.BindingSuccess:
	case stun.BindingError:
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(m); err == nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %d %s", ErrSTUNErrorResponse, code.Code, code.Reason)
		}
		return netip.AddrPort{}, ErrSTUNErrorResponse
	default:
		return netip.AddrPort{}, fmt.Errorf("%w: unexpected message type %v", ErrBadSTUNResponse, m.Type)
	}
	var ip net.IP
	var port int
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(m); err == nil {
		ip, port = xor.IP, xor.Port
	} else {
		var mapped stun.MappedAddress
		if err := mapped.GetFrom(m); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: no mapped address", ErrBadSTUNResponse)
		}
		ip, port = mapped.IP, mapped.Port
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok || port <= 0 || port > 65535 || addr.IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("%w: bad mapped address %v:%d", ErrBadSTUNResponse, ip, port)
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
