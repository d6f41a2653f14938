// signal_test.go tests the signaling wire format: round trips, the strict decoder (fuzzed).

package natt

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testCand = "candidate:1 1 udp 2130706431 192.0.2.7 51820 typ host"

func TestSignalRoundTrip(t *testing.T) {
	msgs := []SignalMessage{
		{V: 1, Type: SignalOffer, Session: "5f0c2a9e41d7b3a8", Ufrag: "kXzq", Pwd: "0123456789abcdefghijkl"},
		{V: 1, Type: SignalAnswer, Session: "5f0c2a9e41d7b3a8", Ufrag: "Pq9v+/", Pwd: "0123456789abcdefghijklmnop"},
		{V: 1, Type: SignalCandidate, Session: "5f0c2a9e41d7b3a8", Candidate: testCand},
		{V: 1, Type: SignalEndOfCandidates, Session: "5f0c2a9e41d7b3a8"},
		{V: 1, Type: SignalRestart, Session: "5f0c2a9e41d7b3a8"},
		{V: 1, Type: SignalRestart, Session: "a-b_c-d_e"},
	}
	for _, m := range msgs {
		b, err := m.Encode()
		require.NoError(t, err, "%s: encode", m.Type)
		got, err := DecodeSignal(b)
		require.NoError(t, err, "%s: decode %s", m.Type, b)
		assert.Equal(t, m, got)
	}
}

func TestDecodeSignalRejects(t *testing.T) {
	cases := map[string]string{
		"empty":            ``,
		"not json":         `hello`,
		"array":            `[]`,
		"null":             `null`,
		"trailing":         `{"v":1,"type":"restart","session":"5f0c2a9e41d7b3a8"} {}`,
		"unknown field":    `{"v":1,"type":"restart","session":"5f0c2a9e41d7b3a8","x":1}`,
		"no version":       `{"type":"restart","session":"5f0c2a9e41d7b3a8"}`,
		"unknown type":     `{"v":1,"type":"bye","session":"5f0c2a9e41d7b3a8"}`,
		"no type":          `{"v":1,"session":"5f0c2a9e41d7b3a8"}`,
		"short session":    `{"v":1,"type":"restart","session":"abc"}`,
		"bad session":      `{"v":1,"type":"restart","session":"5f0c2a9e 41d7b3a8"}`,
		"session with +":   `{"v":1,"type":"restart","session":"5f0c2a9e+41d7b3a8"}`,
		"offer no pwd":     `{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kXzq"}`,
		"offer short pwd":  `{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kXzq","pwd":"short"}`,
		"offer bad ufrag":  `{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kX:q","pwd":"0123456789abcdefghijkl"}`,
		"offer ufrag _":    `{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kX_q","pwd":"0123456789abcdefghijkl"}`,
		"offer candidate":  `{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kXzq","pwd":"0123456789abcdefghijkl","candidate":"` + testCand + `"}`,
		"restart extra":    `{"v":1,"type":"restart","session":"5f0c2a9e41d7b3a8","ufrag":"kXzq"}`,
		"candidate empty":  `{"v":1,"type":"candidate","session":"5f0c2a9e41d7b3a8"}`,
		"candidate junk":   `{"v":1,"type":"candidate","session":"5f0c2a9e41d7b3a8","candidate":"candidate:junk"}`,
		"candidate tcp":    `{"v":1,"type":"candidate","session":"5f0c2a9e41d7b3a8","candidate":"candidate:1 1 tcp 2130706431 192.0.2.7 9 typ host tcptype active"}`,
		"candidate mdns":   `{"v":1,"type":"candidate","session":"5f0c2a9e41d7b3a8","candidate":"candidate:1 1 udp 2130706431 abc.local 51820 typ host"}`,
		"candidate creds":  `{"v":1,"type":"candidate","session":"5f0c2a9e41d7b3a8","ufrag":"kXzq","candidate":"` + testCand + `"}`,
		"wrong field type": `{"v":"1","type":"restart","session":"5f0c2a9e41d7b3a8"}`,
		"too large":        `{"v":1,"type":"restart","session":"5f0c2a9e41d7b3a8","pad":"` + strings.Repeat("x", MaxSignalSize) + `"}`,
	}
	for name, in := range cases {
		_, err := DecodeSignal([]byte(in))
		assert.ErrorIs(t, err, ErrBadSignal, name)
	}
	_, err := DecodeSignal([]byte(`{"v":2,"type":"restart","session":"5f0c2a9e41d7b3a8"}`))
	assert.ErrorIs(t, err, ErrSignalVersion, "v2")
}

func FuzzDecodeSignal(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kXzq","pwd":"0123456789abcdefghijkl"}`))
	f.Add([]byte(`{"v":1,"type":"candidate","session":"5f0c2a9e41d7b3a8","candidate":"` + testCand + `"}`))
	f.Add([]byte(`{"v":1,"type":"candidate","session":"5f0c2a9e41d7b3a8","candidate":"candidate:1 1 udp 1694498815 198.51.100.7 40000 typ srflx raddr 10.0.0.2 rport 51820"}`))
	f.Add([]byte(`{"v":1,"type":"restart","session":"5f0c2a9e41d7b3a8"}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeSignal(b)
		if err != nil {
			if !errors.Is(err, ErrSignalVersion) {
				require.ErrorIs(t, err, ErrBadSignal, "the error wraps neither sentinel")
			}
			return
		}
		// Whatever is accepted re-encodes to something that decodes to the same message.
		enc, err := m.Encode()
		require.NoError(t, err, "accepted %q but cannot re-encode it", b)
		m2, err := DecodeSignal(enc)
		require.NoError(t, err, "re-decode of %s", enc)
		require.Equal(t, m, m2)
	})
}
