// command.go holds what every command shares: the command type, the environment it runs in,
// its flag and argument parsing, and the builders of the commands that only list, show or
// delete something.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nexodus-sdk/nexodus/client"
)

// command is one RESOURCE VERB.
type command struct {
	args    string // usage of the positional arguments and flags
	summary string
	run     runFunc
}

// required returns the usage of the command's arguments without its optional flags.
func (c command) required() string {
	var out []string
	optional := false
	for _, tok := range strings.Fields(c.args) {
		if strings.HasPrefix(tok, "[-") {
			optional = true
		}
		if !optional {
			out = append(out, tok)
		}
		if optional && strings.HasSuffix(tok, "]") {
			optional = false
		}
	}
	return strings.Join(out, " ")
}

// runFunc is what a command does with its arguments (everything after RESOURCE VERB).
type runFunc func(e *env, args []string) error

// env is what a command runs with.
type env struct {
	ctx    context.Context
	g      *globals
	stdout io.Writer
	stderr io.Writer
	name   string // "RESOURCE VERB", for usage messages
	cmd    command
	c      *client.Client
	cancel context.CancelFunc // releases the command's timeout context
	getenv func(string) string
	anon   bool // the command needs no token (login)
}

// flags returns a FlagSet for the command that also accepts the global flags.
func (e *env) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("nexctl "+e.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	e.g.register(fs)
	return fs
}

// parse parses a command's flags, which may come before, between or after its positional
// arguments ("--" ends the flags), checks that there are exactly want positional arguments,
// and then makes the API client.
func (e *env) parse(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				e.printCommandUsage(fs)
				return nil, flag.ErrHelp
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != want {
		switch {
		case want == 0:
			return nil, usagef("unexpected argument %q", pos[0])
		case len(pos) < want:
			return nil, usagef("missing argument")
		default:
			return nil, usagef("too many arguments")
		}
	}
	switch e.g.output {
	case "table", "json":
	default:
		return nil, usagef("unknown output format %q (want table or json)", e.g.output)
	}
	return pos, e.connect()
}

// parseAnon is parse for a command that needs no token (login): its context is bounded only
// by an explicit --timeout.
func (e *env) parseAnon(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	e.anon = true
	return e.parse(fs, args, want)
}

func (e *env) printCommandUsage(fs *flag.FlagSet) {
	fmt.Fprintf(e.stdout, "usage: nexctl %s %s\n\n%s\n", e.name, e.cmd.args, e.cmd.summary)
	var own []string
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "url", "token", "o", "output", "timeout":
			return
		}
		own = append(own, f.Name)
	})
	if len(own) == 0 {
		return
	}
	fmt.Fprintln(e.stdout, "\nflags:")
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, name := range own {
		f := fs.Lookup(name)
		fmt.Fprintf(tw, "  --%s\t%s\n", f.Name, f.Usage)
	}
	_ = tw.Flush()
}

// connect makes the API client once the command line is known to be right. Without --token
// or NEXODUS_TOKEN it uses the token "nexctl login" saved for the coordinator.
func (e *env) connect() error {
	if e.g.token == "" && !e.anon {
		tok, err := loadToken(e.getenv, e.g.url)
		if err != nil {
			return err
		}
		if tok == "" {
			return usagef("no token: run 'nexctl login', pass --token or set NEXODUS_TOKEN")
		}
		e.g.token = tok
	}
	if e.g.timeout > 0 && (!e.anon || e.g.timeoutSet) {
		e.ctx, e.cancel = context.WithTimeout(e.ctx, e.g.timeout)
	}
	c, err := client.New(e.g.url, client.WithToken(e.g.token), client.WithUserAgent("nexctl"))
	if err != nil {
		return usagef("%v", err)
	}
	e.c = c
	return nil
}

// resolver turns a command-line name into an ID: e.orgID, e.deviceID and so on, or asIs for
// the things that are named by ID only.
type resolver func(e *env, value string) (string, error)

func asIs(_ *env, value string) (string, error) { return value, nil }

// parseOne parses a command of one positional argument and resolves it; it returns the
// argument as given and the ID.
func (e *env) parseOne(fs *flag.FlagSet, args []string, resolve resolver) (arg, id string, err error) {
	pos, err := e.parse(fs, args, 1)
	if err != nil {
		return "", "", err
	}
	id, err = resolve(e, pos[0])
	return pos[0], id, err
}

// listCmd is a command without arguments that prints what list returns.
func listCmd[T any](tb table[T], list func(*client.Client, context.Context) ([]T, error)) runFunc {
	return func(e *env, args []string) error {
		if _, err := e.parse(e.flags(), args, 0); err != nil {
			return err
		}
		vs, err := list(e.c, e.ctx)
		if err != nil {
			return err
		}
		return tb.list(e, vs)
	}
}

// oneCmd is a command of one argument that prints what get returns for it: a get, or an
// action that answers with the object in its new state.
func oneCmd[T any](tb table[T], resolve resolver, get func(*client.Client, context.Context, string) (*T, error)) runFunc {
	return func(e *env, args []string) error {
		_, id, err := e.parseOne(e.flags(), args, resolve)
		if err != nil {
			return err
		}
		v, err := get(e.c, e.ctx, id)
		if err != nil {
			return err
		}
		return tb.one(e, v)
	}
}

// deleteCmd is a command of one argument that deletes it and reports done, a format with
// one %s for the argument.
func deleteCmd(done string, resolve resolver, del func(*client.Client, context.Context, string) error) runFunc {
	return func(e *env, args []string) error {
		arg, id, err := e.parseOne(e.flags(), args, resolve)
		if err != nil {
			return err
		}
		if err := del(e.c, e.ctx, id); err != nil {
			return err
		}
		return e.done(done, arg)
	}
}

// orgUsage is the usage of an optional --org flag.
const orgUsage = "organization ID or name (default: your personal organization)"

// parseOrg is parse for a command that also takes --org (default: the caller's personal
// organization); it returns the organization's ID too.
func (e *env) parseOrg(fs *flag.FlagSet, args []string, want int) (pos []string, orgID string, err error) {
	org := fs.String("org", "", orgUsage)
	if pos, err = e.parse(fs, args, want); err != nil {
		return nil, "", err
	}
	orgID, err = e.orgID(*org)
	return pos, orgID, err
}

// orgCmd is a command without arguments that acts on the organization of --org.
func orgCmd(act func(e *env, orgID string) error) runFunc {
	return func(e *env, args []string) error {
		_, id, err := e.parseOrg(e.flags(), args, 0)
		if err != nil {
			return err
		}
		return act(e, id)
	}
}

// requiredOrgID resolves the value of an --org flag that must be given.
func (e *env) requiredOrgID(value string) (string, error) {
	if value == "" {
		return "", usagef("--org is required")
	}
	return e.orgID(value)
}

// parseDuration accepts Go durations ("90m", "24h") and whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 36500 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}

// expiresFlag adds the --expires flag: a lifetime ("48h", "7d") read as whole seconds, 0
// when the flag is not given.
func expiresFlag(fs *flag.FlagSet, usage string) *int64 {
	secs := new(int64)
	fs.Func("expires", usage, func(v string) error {
		d, err := parseDuration(v)
		if err != nil {
			return err
		}
		*secs = max(int64(d/time.Second), 1)
		return nil
	})
	return secs
}
