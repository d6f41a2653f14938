// output.go holds how nexctl prints: tables of API objects for people, their JSON for
// scripts, and the small formatters the tables use.

package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// table prints one kind of API object: the column titles and the cells of one object.
type table[T any] struct {
	header []string
	row    func(T) []string
}

// one prints one object.
func (tb table[T]) one(e *env, v *T) error {
	return e.show(v, tb.header, [][]string{tb.row(*v)})
}

// list prints a list of objects ([] in JSON when there are none).
func (tb table[T]) list(e *env, vs []T) error {
	rows := make([][]string, 0, len(vs))
	for _, v := range vs {
		rows = append(rows, tb.row(v))
	}
	if vs == nil {
		vs = []T{}
	}
	return e.show(vs, tb.header, rows)
}

// with returns the table with one more column.
func (tb table[T]) with(title string, cell func(T) string) table[T] {
	return table[T]{
		header: append(slices.Clone(tb.header), title),
		row:    func(v T) []string { return append(tb.row(v), cell(v)) },
	}
}

// show prints v as JSON with -o json, or as a table made of header and rows otherwise.
func (e *env) show(v any, header []string, rows [][]string) error {
	if e.g.output == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i, c := range r {
			if c == "" {
				r[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// done reports a completed action without output of its own (a delete): a line in table
// mode, nothing with -o json.
func (e *env) done(format string, args ...any) error {
	if e.g.output == "json" {
		return nil
	}
	_, err := fmt.Fprintf(e.stdout, format+"\n", args...)
	return err
}

// note writes a remark for people to stderr, so stdout stays parseable.
func (e *env) note(format string, args ...any) {
	if e.g.output != "json" {
		fmt.Fprintf(e.stderr, format+"\n", args...)
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
