// Command nexctl is the command-line client of a Nexodus coordinator, for the people who run
// one (users and tokens, with the admin token) and the people who use one (organizations,
// members, invitations, registration keys, devices).
//
//	nexctl [--url URL] [--token TOKEN] [-o table|json] RESOURCE VERB [ARGS] [FLAGS]
//
// See README.md beside this file, or run "nexctl help".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nexodus-sdk/nexodus/client"
)

const defaultURL = "http://127.0.0.1:8080"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the API or the network said no
	exitUsage = 2 // the command line is wrong
)

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// globals are the options every command accepts, before or after RESOURCE VERB.
type globals struct {
	url     string
	token   string
	output  string
	timeout time.Duration
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", g.url, "coordinator URL (env NEXODUS_URL)")
	fs.StringVar(&g.token, "token", g.token, "bearer token: admin or user API token (env NEXODUS_TOKEN)")
	fs.StringVar(&g.output, "o", g.output, "output format: table or json")
	fs.StringVar(&g.output, "output", g.output, "output format: table or json")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "time limit of the whole command")
}

// command is one RESOURCE VERB.
type command struct {
	args    string // usage of the positional arguments and flags
	summary string
	run     func(e *env, args []string) error
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

// resources maps RESOURCE to VERB to command; filled by the files of this package.
var resources = map[string]map[string]command{}

// resourceOrder is the order of the help text.
var resourceOrder = []string{"user", "org", "member", "relays", "invite", "regkey", "device"}

// aliases of resource names.
var aliases = map[string]string{
	"users": "user", "organization": "org", "organizations": "org", "orgs": "org",
	"members": "member", "invitation": "invite", "invitations": "invite", "invites": "invite",
	"reg-key": "regkey", "regkeys": "regkey", "reg-keys": "regkey", "devices": "device",
	"relay": "relays",
}

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
}

// run is nexctl without the process: it parses args, runs the command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	g := &globals{url: getenv("NEXODUS_URL"), token: getenv("NEXODUS_TOKEN"), output: "table", timeout: time.Minute}
	if g.url == "" {
		g.url = defaultURL
	}
	fs := flag.NewFlagSet("nexctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "nexctl: %v\n", err)
		fmt.Fprintln(stderr, "Run 'nexctl help' for usage.")
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	if rest[0] == "help" {
		printUsage(stdout)
		return exitOK
	}
	resName := rest[0]
	if a, ok := aliases[resName]; ok {
		resName = a
	}
	verbs, ok := resources[resName]
	if !ok {
		fmt.Fprintf(stderr, "nexctl: unknown resource %q\n", rest[0])
		fmt.Fprintln(stderr, "Run 'nexctl help' for usage.")
		return exitUsage
	}
	if len(rest) < 2 || rest[1] == "help" || rest[1] == "-h" || rest[1] == "--help" {
		w, code := stderr, exitUsage
		if len(rest) >= 2 {
			w, code = stdout, exitOK
		}
		printResourceUsage(w, resName, verbs)
		return code
	}
	cmd, ok := verbs[rest[1]]
	if !ok {
		fmt.Fprintf(stderr, "nexctl: unknown command %q for %s\n", rest[1], resName)
		printResourceUsage(stderr, resName, verbs)
		return exitUsage
	}

	e := &env{ctx: ctx, g: g, stdout: stdout, stderr: stderr, name: resName + " " + rest[1], cmd: cmd, getenv: getenv}
	err := cmd.run(e, rest[2:])
	if e.cancel != nil {
		e.cancel()
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "nexctl: %s\nusage: nexctl %s %s\n", ue.msg, e.name, cmd.args)
		return exitUsage
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		fmt.Fprintf(stderr, "nexctl: %s\n", apiErr.Message)
	} else {
		fmt.Fprintf(stderr, "nexctl: %v\n", err)
	}
	return exitError
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

// connect makes the API client once the command line is known to be right.
func (e *env) connect() error {
	if e.g.token == "" {
		return usagef("no token: pass --token or set NEXODUS_TOKEN")
	}
	if e.g.timeout > 0 {
		e.ctx, e.cancel = context.WithTimeout(e.ctx, e.g.timeout)
	}
	c, err := client.New(e.g.url, client.WithToken(e.g.token), client.WithUserAgent("nexctl"))
	if err != nil {
		return usagef("%v", err)
	}
	e.c = c
	return nil
}

// ---- output ----

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

// seconds converts an optional --expires flag to whole seconds (0 when unset).
func seconds(flagValue string) (int64, error) {
	if flagValue == "" {
		return 0, nil
	}
	d, err := parseDuration(flagValue)
	if err != nil {
		return 0, usagef("--expires: %v", err)
	}
	return max(int64(d/time.Second), 1), nil
}

// ---- help ----

func printUsage(w io.Writer) {
	fmt.Fprint(w, `nexctl drives a Nexodus coordinator.

usage: nexctl [--url URL] [--token TOKEN] [-o table|json] RESOURCE VERB [ARGS] [FLAGS]

global flags (also accepted after RESOURCE VERB):
  --url URL         coordinator URL (env NEXODUS_URL, default `+defaultURL+`)
  --token TOKEN     admin token or user API token (env NEXODUS_TOKEN)
  -o, --output FMT  table (default) or json
  --timeout D       time limit of the whole command (default 1m)

commands:
`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range resourceOrder {
		verbs := resources[r]
		for _, v := range sortedVerbs(verbs) {
			fmt.Fprintf(tw, "  %s %s %s\t%s\n", r, v, verbs[v].required(), verbs[v].summary)
		}
	}
	_ = tw.Flush()
	fmt.Fprint(w, `
Organizations (--org) may be given by ID or name; where --org is optional it defaults to
your personal organization. Users, members and devices may be given by ID or name.
Run 'nexctl RESOURCE VERB -h' for a command's flags.
`)
}

func printResourceUsage(w io.Writer, res string, verbs map[string]command) {
	fmt.Fprintf(w, "usage: nexctl %s VERB\n\n", res)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range sortedVerbs(verbs) {
		fmt.Fprintf(tw, "  %s %s %s\t%s\n", res, v, verbs[v].args, verbs[v].summary)
	}
	_ = tw.Flush()
}

func sortedVerbs(verbs map[string]command) []string {
	out := make([]string, 0, len(verbs))
	for v := range verbs {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
