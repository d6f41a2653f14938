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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
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
	// timeoutSet: --timeout was given (login is otherwise bounded by its code's expiry).
	timeoutSet bool
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", g.url, "coordinator URL (env NEXODUS_URL)")
	fs.StringVar(&g.token, "token", g.token, "bearer token: admin or user API token (env NEXODUS_TOKEN)")
	fs.StringVar(&g.output, "o", g.output, "output format: table or json")
	fs.StringVar(&g.output, "output", g.output, "output format: table or json")
	fs.Func("timeout", "time limit of the whole command (default 1m; login: the code's lifetime)", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		g.timeout, g.timeoutSet = d, true
		return nil
	})
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
	verb, cmdArgs := "", rest[1:]
	if _, single := verbs[""]; single {
		// A command without verbs (login, logout): everything after it is its arguments.
	} else if len(rest) < 2 || rest[1] == "help" || rest[1] == "-h" || rest[1] == "--help" {
		w, code := stderr, exitUsage
		if len(rest) >= 2 {
			w, code = stdout, exitOK
		}
		printResourceUsage(w, resName, verbs)
		return code
	} else {
		verb, cmdArgs = rest[1], rest[2:]
	}
	cmd, ok := verbs[verb]
	if !ok {
		fmt.Fprintf(stderr, "nexctl: unknown command %q for %s\n", verb, resName)
		printResourceUsage(stderr, resName, verbs)
		return exitUsage
	}

	e := &env{ctx: ctx, g: g, stdout: stdout, stderr: stderr, name: strings.TrimSpace(resName + " " + verb), cmd: cmd, getenv: getenv}
	err := cmd.run(e, cmdArgs)
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

func printUsage(w io.Writer) {
	fmt.Fprint(w, `nexctl drives a Nexodus coordinator.

usage: nexctl [--url URL] [--token TOKEN] [-o table|json] RESOURCE VERB [ARGS] [FLAGS]

global flags (also accepted after RESOURCE VERB):
  --url URL         coordinator URL (env NEXODUS_URL, default `+defaultURL+`)
  --token TOKEN     admin token or user API token (env NEXODUS_TOKEN; default: the
                    token 'nexctl login' saved for the coordinator)
  -o, --output FMT  table (default) or json
  --timeout D       time limit of the whole command (default 1m)

commands:
`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range resourceOrder {
		verbs := resources[r]
		for _, v := range sortedVerbs(verbs) {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.Join(strings.Fields(r+" "+v+" "+verbs[v].required()), " "), verbs[v].summary)
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
