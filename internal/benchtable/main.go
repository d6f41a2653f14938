// Command benchtable runs the data-plane benchmarks and prints them as a Markdown table of
// figures and ratios: the mesh beside stock wireguard-go + netstack (the baseline) and the
// kernel's loopback (the ceiling), all measured in the same run, and two Nodes direct beside the
// same two through a TURN relay.
//
//	go run ./internal/benchtable              # about four minutes on two cores
//	go run ./internal/benchtable -count 3     # each figure the median of three runs
//
// It prints the go test commands it runs, so each figure can be reproduced alone.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// run is one go test invocation.
type run struct {
	pkg, bench, benchtime string
}

var runs = []run{
	{"./mesh/", "TCPThroughput|UDPThroughput|TCPRTT", "2s"},
	{"./mesh/", "Setup|IdleMemory", "30x"},
	{"./mesh/", "PeakRSS", "1x"},
	{".", "NodePaths", "2s"},
	{".", "UpToFirstByte", "30x"},
}

// results maps "BenchmarkName/sub" (without the -N suffix) to unit to the values measured.
type results map[string]map[string][]float64

func main() {
	count := flag.Int("count", 1, "runs of each benchmark; the table shows the median")
	flag.Parse()
	res := results{}
	for _, r := range runs {
		args := []string{"test", "-run", "^$", "-bench", r.bench, "-benchmem", "-benchtime", r.benchtime,
			"-count", strconv.Itoa(*count), r.pkg}
		fmt.Fprintf(os.Stderr, "go %s\n", strings.Join(args, " "))
		cmd := exec.Command("go", args...)
		var out bytes.Buffer
		cmd.Stdout = io.MultiWriter(&out, os.Stderr)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "benchtable: go test: %v\n", err)
			os.Exit(1)
		}
		res.parse(&out)
	}
	res.print(os.Stdout)
}

// parse reads benchmark result lines: name, iterations, then value/unit pairs.
func (res results) parse(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if res[name] == nil {
				res[name] = map[string][]float64{}
			}
			res[name][f[i+1]] = append(res[name][f[i+1]], v)
		}
	}
}

// get returns the median of a benchmark's values in unit, and whether there were any.
func (res results) get(name, unit string) (float64, bool) {
	vs := slices.Clone(res[name][unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	return vs[len(vs)/2], true
}

func (res results) cell(name, unit string) string {
	v, ok := res.get(name, unit)
	if !ok {
		return "—"
	}
	return format(v)
}

func format(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func (res results) ratio(a, b, unit string) string {
	x, ok1 := res.get(a, unit)
	y, ok2 := res.get(b, unit)
	if !ok1 || !ok2 || y == 0 {
		return "—"
	}
	return format(x/y) + "×"
}

func (res results) print(w io.Writer) {
	type row struct{ label, bench, unit string }
	rows := []row{
		{"TCP throughput, one way (MB/s)", "BenchmarkTCPThroughput/one-way", "MB/s"},
		{"TCP throughput, both ways at once (MB/s)", "BenchmarkTCPThroughput/both-ways", "MB/s"},
		{"UDP goodput, unpaced 1380-byte datagrams (MB/s)", "BenchmarkUDPThroughput", "recv-MB/s"},
		{"UDP loss, unpaced (%)", "BenchmarkUDPThroughput", "loss-%"},
		{"TCP 1-byte RTT p50 (µs)", "BenchmarkTCPRTT", "p50-µs"},
		{"TCP 1-byte RTT p99 (µs)", "BenchmarkTCPRTT", "p99-µs"},
		{"setup, new pair to first echoed byte, p50 (ms)", "BenchmarkSetup", "p50-ms"},
		{"setup p99 (ms)", "BenchmarkSetup", "p99-ms"},
		{"idle memory per node (MiB)", "BenchmarkIdleMemory", "MiB/node"},
		{"peak RSS, 512 MiB one way + 512 MiB each way (MiB)", "BenchmarkPeakRSS", "peak-RSS-MiB"},
	}
	fmt.Fprintln(w, "| two nodes in one process, 127.0.0.1 | kernel | stock wireguard-go | mesh | mesh / stock |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.label,
			res.cell(r.bench+"/kernel", r.unit), res.cell(r.bench+"/stock", r.unit),
			res.cell(r.bench+"/mesh", r.unit), res.ratio(r.bench+"/mesh", r.bench+"/stock", r.unit))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| two Nodes (coordinator, NAT traversal) | direct | through a TURN relay | relayed / direct |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, r := range []row{
		{"TCP throughput (MB/s)", "throughput", "MB/s"},
		{"TCP 1-byte RTT p50 (µs)", "rtt", "p50-µs"},
		{"TCP 1-byte RTT p99 (µs)", "rtt", "p99-µs"},
	} {
		d, rl := "BenchmarkNodePaths/direct/"+r.bench, "BenchmarkNodePaths/relayed/"+r.bench
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.label, res.cell(d, r.unit), res.cell(rl, r.unit), res.ratio(rl, d, r.unit))
	}
	fmt.Fprintf(w, "| new Node's Up to first echoed byte from a running peer, p50 / p99 (ms) | %s / %s | | |\n",
		res.cell("BenchmarkUpToFirstByte", "p50-ms"), res.cell("BenchmarkUpToFirstByte", "p99-ms"))
}
