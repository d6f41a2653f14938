package client

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseAll(r io.Reader, max int) ([]sseMessage, int, error) {
	p := newSSEReader(r, max)
	var out []sseMessage
	for {
		m, err := p.next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return out, p.records, err
		}
		out = append(out, m)
	}
}

func TestSSEParse(t *testing.T) {
	msg := func(id, event, data string) sseMessage {
		return sseMessage{ID: id, Event: event, Data: []byte(data)}
	}
	tests := []struct {
		name  string
		in    string
		want  []sseMessage
		recs  int
		error error
	}{
		{"LF", "id: 1\nevent: sync\ndata: {}\n\n", []sseMessage{msg("1", "sync", "{}")}, 1, nil},
		{"CRLF", "id: 1\r\nevent: sync\r\ndata: {}\r\n\r\n", []sseMessage{msg("1", "sync", "{}")}, 1, nil},
		{"CR", "id: 1\revent: sync\rdata: {}\r\r", []sseMessage{msg("1", "sync", "{}")}, 1, nil},
		{"mixed", "data: a\r\n\ndata: b\r\rdata: c\n\r\n", []sseMessage{msg("", "message", "a"), msg("", "message", "b"), msg("", "message", "c")}, 3, nil},
		{"multi-line data", "data: a\ndata:b\ndata:  c\ndata\n\n", []sseMessage{msg("", "message", "a\nb\n c\n")}, 1, nil},
		{"empty data dispatches", "data\n\n", []sseMessage{msg("", "message", "")}, 1, nil},
		{"comments and heartbeats", ": ping\n\n:\n: ping\ndata: x\n\n", []sseMessage{msg("", "message", "x")}, 4, nil},
		{"no data: not dispatched, type reset", "event: a\n\ndata: x\n\n", []sseMessage{msg("", "message", "x")}, 1, nil},
		{"id persists", "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", []sseMessage{msg("7", "message", "a"), msg("7", "message", "b"), msg("", "message", "c")}, 3, nil},
		{"id with NUL ignored", "id: 5\ndata: a\n\nid: 6\x00\ndata: b\n\n", []sseMessage{msg("5", "message", "a"), msg("5", "message", "b")}, 2, nil},
		{"unknown fields and retry", "retry: 100\nfoo: bar\nretry: x\ndata: a\n\n", []sseMessage{msg("", "message", "a")}, 1, nil},
		{"value keeps colons", "data: a: b:c\n\n", []sseMessage{msg("", "message", "a: b:c")}, 1, nil},
		{"BOM", "\xEF\xBB\xBFdata: a\n\n", []sseMessage{msg("", "message", "a")}, 1, nil},
		{"incomplete at EOF dropped", "data: a\n\ndata: b\n", []sseMessage{msg("", "message", "a")}, 1, nil},
		{"unterminated line dropped", "data: a\n\ndata: b", []sseMessage{msg("", "message", "a")}, 1, nil},
		{"line too long", "data: " + strings.Repeat("x", 100) + "\n\n", nil, 0, errSSELineTooLong},
		{"event too large", strings.Repeat("data: "+strings.Repeat("x", 30)+"\n", 4) + "\n", nil, 0, errSSEEventTooLong},
		{"comment too long", ":" + strings.Repeat("x", 100) + "\n", nil, 0, errSSELineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				got, recs, err := parseAll(r, 64)
				if tt.error != nil {
					require.ErrorIs(t, err, tt.error)
				} else {
					require.NoError(t, err)
					assert.Equal(t, tt.recs, recs, "records")
				}
				assert.Equal(t, tt.want, got)
			}
		})
	}
}

// FuzzSSE checks that the parser neither panics nor exceeds its bounds on any input, and that
// its result does not depend on how the input is split into reads.
func FuzzSSE(f *testing.F) {
	for _, s := range []string{
		"id: 1\nevent: sync\ndata: {\"revision\":1}\n\n",
		"id: 1\r\nevent: sync\r\ndata: {}\r\n\r\n",
		"data: a\rdata: b\r\r: ping\r\n",
		"\xEF\xBB\xBFdata\n\nid\x00\n",
		": ping\n\nretry: 10\n\n",
		"data: " + strings.Repeat("y", 200) + "\n\n",
	} {
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		const max = 128
		whole, recs1, err1 := parseAll(bytes.NewReader(in), max)
		split, recs2, err2 := parseAll(&chunkReader{b: in, n: int(chunk)%16 + 1}, max)
		require.True(t, errors.Is(err1, err2) || errors.Is(err2, err1), "errors differ: %v / %v", err1, err2)
		require.Equal(t, whole, split)
		require.Equal(t, recs1, recs2, "records")
		for _, m := range whole {
			require.LessOrEqual(t, len(m.Data), max, "data of %v", m)
			require.LessOrEqual(t, len(m.ID), max, "id of %v", m)
			require.LessOrEqual(t, len(m.Event), max, "event of %v", m)
			require.NotEmpty(t, m.Event, "event type of %v", m)
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}
