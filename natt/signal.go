// signal.go holds the signaling wire format: SignalMessage, its strict decoder and the
// validation of the candidates it carries.

package natt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/pion/ice/v4"
)

// Signaling format. Every message between two Managers is one JSON object:
//
//	{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kXzq","pwd":"0123456789abcdefghijkl"}
//	{"v":1,"type":"answer","session":"5f0c2a9e41d7b3a8","ufrag":"Pq9v","pwd":"..."}
//	{"v":1,"type":"candidate","session":"5f0c2a9e41d7b3a8","candidate":"candidate:1 1 udp 2130706431 192.0.2.7 51820 typ host"}
//	{"v":1,"type":"end-of-candidates","session":"5f0c2a9e41d7b3a8"}
//	{"v":1,"type":"restart","session":"5f0c2a9e41d7b3a8"}
//
// "session" names one ICE session (one pair of agents with fixed credentials); the side that
// offers picks it. "candidate" is an RFC 8839 candidate attribute value without "a=".
// "restart" tells the peer that the sender dropped that session (its path failed, the peer was
// removed, or the node is shutting down) and that a new offer should follow.
const (
	SignalVersion = 1    // the only version this package speaks
	MaxSignalSize = 4096 // bytes; larger messages are rejected unread
)

// SignalType is the kind of a signaling message.
type SignalType string

// Signaling message types.
const (
	SignalOffer           SignalType = "offer"
	SignalAnswer          SignalType = "answer"
	SignalCandidate       SignalType = "candidate"
	SignalEndOfCandidates SignalType = "end-of-candidates"
	SignalRestart         SignalType = "restart"
)

// Sentinel errors of the signaling decoder.
var (
	// ErrBadSignal: the message is malformed, too large, of an unknown type, or misses or
	// carries fields its type does not allow.
	ErrBadSignal = errors.New("natt: bad signaling message")
	// ErrSignalVersion: the message is of a version this package does not speak.
	ErrSignalVersion = errors.New("natt: unsupported signaling version")
)

// SignalMessage is one signaling message (see the format above).
type SignalMessage struct {
	V         int        `json:"v"`
	Type      SignalType `json:"type"`
	Session   string     `json:"session"`
	Ufrag     string     `json:"ufrag,omitempty"`
	Pwd       string     `json:"pwd,omitempty"`
	Candidate string     `json:"candidate,omitempty"`
}

// Encode validates m and returns its wire form.
func (m SignalMessage) Encode() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("natt: encode signal: %w", err)
	}
	if len(b) > MaxSignalSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadSignal, len(b))
	}
	return b, nil
}

// DecodeSignal parses and validates one signaling message. It is strict: at most MaxSignalSize
// bytes, exactly one JSON object, no unknown fields, a known version and type, and exactly the
// fields that type needs. Errors wrap ErrBadSignal or ErrSignalVersion.
func DecodeSignal(b []byte) (SignalMessage, error) {
	var m SignalMessage
	if len(b) > MaxSignalSize {
		return m, fmt.Errorf("%w: %d bytes exceeds %d", ErrBadSignal, len(b), MaxSignalSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return SignalMessage{}, fmt.Errorf("%w: %w", ErrBadSignal, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return SignalMessage{}, fmt.Errorf("%w: trailing data after the message", ErrBadSignal)
	}
	if err := m.validate(); err != nil {
		return SignalMessage{}, err
	}
	return m, nil
}

func (m SignalMessage) validate() error {
	if m.V != SignalVersion {
		if m.V > SignalVersion {
			return fmt.Errorf("%w: %d", ErrSignalVersion, m.V)
		}
		return fmt.Errorf("%w: version %d", ErrBadSignal, m.V)
	}
	if !validSession(m.Session) {
		return fmt.Errorf("%w: bad session id %q", ErrBadSignal, m.Session)
	}
	switch m.Type {
	case SignalOffer, SignalAnswer:
		if !validICEChars(m.Ufrag, 4, 256) || !validICEChars(m.Pwd, 22, 256) {
			return fmt.Errorf("%w: %s needs a ufrag (4-256 ice-chars) and pwd (22-256)", ErrBadSignal, m.Type)
		}
		if m.Candidate != "" {
			return fmt.Errorf("%w: %s carries a candidate", ErrBadSignal, m.Type)
		}
	case SignalCandidate:
		if m.Ufrag != "" || m.Pwd != "" {
			return fmt.Errorf("%w: candidate carries credentials", ErrBadSignal)
		}
		if _, err := parseCandidate(m.Candidate); err != nil {
			return err
		}
	case SignalEndOfCandidates, SignalRestart:
		if m.Ufrag != "" || m.Pwd != "" || m.Candidate != "" {
			return fmt.Errorf("%w: %s carries extra fields", ErrBadSignal, m.Type)
		}
	default:
		return fmt.Errorf("%w: unknown type %q", ErrBadSignal, m.Type)
	}
	return nil
}

// maxCandidateLen bounds a candidate attribute (real ones are well under 200 bytes).
const maxCandidateLen = 512

// parseCandidate parses a candidate attribute and accepts only UDP candidates with a literal IP
// address (no mDNS names, no TCP).
func parseCandidate(s string) (ice.Candidate, error) {
	if s == "" || len(s) > maxCandidateLen {
		return nil, fmt.Errorf("%w: candidate of %d bytes", ErrBadSignal, len(s))
	}
	c, err := ice.UnmarshalCandidate(s)
	if err != nil {
		return nil, fmt.Errorf("%w: candidate: %w", ErrBadSignal, err)
	}
	if !c.NetworkType().IsUDP() {
		return nil, fmt.Errorf("%w: candidate network %s", ErrBadSignal, c.NetworkType())
	}
	if _, err := netip.ParseAddr(c.Address()); err != nil {
		return nil, fmt.Errorf("%w: candidate address %q is not an IP address", ErrBadSignal, c.Address())
	}
	if c.Port() <= 0 || c.Port() > 65535 {
		return nil, fmt.Errorf("%w: candidate port %d", ErrBadSignal, c.Port())
	}
	return c, nil
}

// validSession checks a session ID: 8 to 64 letters, digits, "-" and "_".
func validSession(s string) bool { return validChars(s, 8, 64, "-_") }

// validICEChars checks RFC 8839 ice-char = ALPHA / DIGIT / "+" / "/" and the length bounds.
func validICEChars(s string, lo, hi int) bool { return validChars(s, lo, hi, "+/") }

// validChars reports whether s is lo to hi ASCII letters, digits and bytes of extra.
func validChars(s string, lo, hi int, extra string) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}
