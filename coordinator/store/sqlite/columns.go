package sqlite

// How values are stored: times as fixed-width UTC RFC 3339 text with nanoseconds, lists as
// JSON text ("[]" for none). Writing goes through fmtTime and jsonList; reading through the
// sql.Scanner column types below, so that a scan function is one Scan call.

import (
	"encoding/json"
	"fmt"
	"time"
)

// timeLayout is fixed width (always nine fractional digits, always Z) so that comparing the
// stored text compares the instants.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func fmtTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return fmtTime(*t)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// jsonList encodes a list of strings or of endpoints as JSON, "[]" rather than "null" for
// none: one spelling for "none".
func jsonList[T string | endpointJSON](l []T) string {
	if l == nil {
		l = []T{}
	}
	b, _ := json.Marshal(l) // cannot fail: strings and structs of strings
	return string(b)
}

// text is the string a TEXT column holds, whichever form the driver hands it in.
func text(src any) (string, error) {
	switch v := src.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	}
	return "", fmt.Errorf("stored %T where text was expected", src)
}

// timeCol scans a stored time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	s, err := text(src)
	if err == nil {
		*c.t, err = parseTime(s)
	}
	return err
}

// optTimeCol scans a nullable stored time: nil for NULL.
type optTimeCol struct{ t **time.Time }

func (c optTimeCol) Scan(src any) error {
	if src == nil {
		*c.t = nil
		return nil
	}
	var t time.Time
	if err := (timeCol{&t}).Scan(src); err != nil {
		return err
	}
	*c.t = &t
	return nil
}

// listCol scans a JSON list; an empty one reads back as nil.
type listCol[T any] struct {
	l    *[]T
	what string
}

func (c listCol[T]) Scan(src any) error {
	s, err := text(src)
	if err != nil {
		return err
	}
	var l []T
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return fmt.Errorf("bad stored %s: %w", c.what, err)
	}
	if len(l) == 0 {
		l = nil
	}
	*c.l = l
	return nil
}
