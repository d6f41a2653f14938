package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// sseMessage is one dispatched Server-Sent Events message.
type sseMessage struct {
	// ID is the stream's last event ID when the message was dispatched: the value of the most
	// recent "id" field, in this message or an earlier one (as the SSE specification says).
	ID string
	// Event is the "event" field, or "message" when the message had none.
	Event string
	// Data is the "data" lines joined with "\n".
	Data []byte
}

var (
	errSSELineTooLong  = errors.New("event stream: line too long")
	errSSEEventTooLong = errors.New("event stream: event too large")
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// sseReader parses a text/event-stream body following the WHATWG HTML specification
// (§9.2 Server-sent events): lines end in CRLF, LF or CR; lines starting with ":" are comments
// (heartbeats); "field: value" lines with one optional space after the colon; data lines
// accumulate; a blank line dispatches; a message with no data is not dispatched; an incomplete
// message at end of stream is discarded; a leading UTF-8 BOM is skipped. Lines and messages
// are bounded by max bytes, so a hostile or broken server cannot make it buffer without limit.
type sseReader struct {
	r       *bufio.Reader
	max     int
	lastID  string
	line    []byte
	skipLF  bool // the previous line ended in CR: a following LF belongs to it
	started bool // the first line has been read (BOM handling)

	// records counts complete records read: dispatched messages and comments (heartbeats).
	records int
	// retry is the last valid "retry" field in milliseconds, or -1. The stream does its own
	// backoff and keeps it only for inspection.
	retry int64
}

func newSSEReader(r io.Reader, max int) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 16<<10), max: max, retry: -1}
}

// readLine returns the next line without its terminator. The slice is valid until the next
// call. At end of input an unterminated line is discarded and the error returned.
func (p *sseReader) readLine() ([]byte, error) {
	p.line = p.line[:0]
	for {
		b, err := p.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if p.skipLF {
			p.skipLF = false
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\n':
			return p.line, nil
		case '\r':
			p.skipLF = true
			return p.line, nil
		}
		if len(p.line) >= p.max {
			return nil, errSSELineTooLong
		}
		p.line = append(p.line, b)
	}
}

// next returns the next dispatched message. It returns io.EOF when the stream ends (an
// incomplete trailing message is dropped), and errSSELineTooLong / errSSEEventTooLong when a
// bound is exceeded; the reader is unusable after an error.
func (p *sseReader) next() (sseMessage, error) {
	var (
		event string
		data  []byte
	)
	for {
		line, err := p.readLine()
		if err != nil {
			return sseMessage{}, err
		}
		if !p.started {
			p.started = true
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if len(line) == 0 {
			if len(data) == 0 {
				event = ""
				continue
			}
			p.records++
			if event == "" {
				event = "message"
			}
			return sseMessage{ID: p.lastID, Event: event, Data: data[:len(data)-1]}, nil
		}
		if line[0] == ':' {
			p.records++
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if len(data)+len(value)+1 > p.max {
				return sseMessage{}, errSSEEventTooLong
			}
			data = append(data, value...)
			data = append(data, '\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.lastID = string(value)
			}
		case "retry":
			if ms, ok := parseDigits(value); ok {
				p.retry = ms
			}
		default:
			// Unknown fields are ignored.
		}
	}
}

// parseDigits parses a non-empty string of ASCII digits that fits an int64.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func (m sseMessage) String() string {
	return fmt.Sprintf("id=%q event=%q data=%q", m.ID, m.Event, m.Data)
}
