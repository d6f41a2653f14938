package natt

import (
	"errors"
	"strings"
	"testing"
)

const testCand = "candidate:1 1 udp 2130706431 192.0.2.7 51820 typ host"

func TestSignalRoundTrip(t *testing.T) {
	msgs := []SignalMessage{
		{V: 1, Type: SignalOffer, Session: "5f0c2a9e41d7b3a8", Ufrag: "kXzq", Pwd: "0123456789abcdefghijkl"},
		{V: 1, Type: SignalAnswer, Session: "5f0c2a9e41d7b3a8", Ufrag: "Pq9v+/", Pwd: "0123456789abcdefghijklmnop"},
		{V: 1, Type: SignalCandidate, Session: "5f0c2a9e41d7b3a8", Candidate: testCand},
		{V: 1, Type: SignalEndOfCandidates, Session: "5f0c2a9e41d7b3a8"},
		{V: 1, Type: SignalRestart, Session: "5f0c2a9e41d7b3a8"},
	}
	for _, m := range msgs {
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("%s: encode: %v", m.Type, err)
		}
		got, err := DecodeSignal(b)
		if err != nil {
			t.Fatalf("%s: decode %s: %v", m.Type, b, err)
		}
		if got != m {
			t.Fatalf("round trip: %+v != %+v", got, m)
		}
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
		"offer no pwd":     `{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kXzq"}`,
		"offer short pwd":  `{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kXzq","pwd":"short"}`,
		"offer bad ufrag":  `{"v":1,"type":"offer","session":"5f0c2a9e41d7b3a8","ufrag":"kX:q","pwd":"0123456789abcdefghijkl"}`,
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
		if !errors.Is(err, ErrBadSignal) {
			t.Errorf("%s: err = %v, want ErrBadSignal", name, err)
		}
	}
	_, err := DecodeSignal([]byte(`{"v":2,"type":"restart","session":"5f0c2a9e41d7b3a8"}`))
	if !errors.Is(err, ErrSignalVersion) {
		t.Errorf("v2: err = %v, want ErrSignalVersion", err)
	}
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
			if !errors.Is(err, ErrBadSignal) && !errors.Is(err, ErrSignalVersion) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		// Whatever is accepted re-encodes to something that decodes to the same message.
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("accepted %q but cannot re-encode it: %v", b, err)
		}
		m2, err := DecodeSignal(enc)
		if err != nil || m2 != m {
			t.Fatalf("re-decode of %s: %+v, %v", enc, m2, err)
		}
	})
}
