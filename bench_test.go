package nexodus_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nexodus-sdk/nexodus"
)

// BenchmarkUpToFirstByte measures connection setup as an application sees it: a new node's Up
// until the first echoed byte from a peer that was already running, by hostname. The peer
// learns of the new node from the coordinator at the same moment, so this includes the
// "first packet to a freshly learned peer" path. Reports p50 and p99.
//
//	go test -run '^$' -bench UpToFirstByte -benchtime 30x .
func BenchmarkUpToFirstByte(b *testing.B) {
	e := newEnv(b)
	srv := e.up("srv")
	serveEcho(b, srv, ":7000")
	var samples []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := &nexodus.Node{ControlURL: e.coord.URL, AuthKey: e.key, Hostname: fmt.Sprintf("c%d", i)}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := n.Up(ctx); err != nil {
			b.Fatal(err)
		}
		if err := echoOnce(ctx, n, "tcp", "srv:7000"); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		cancel()
		b.StopTimer()
		n.Close()
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(samples[(len(samples)*99)/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkIdleNodeMemory reports the Go heap an idle node costs, with its peer connected:
// the heap after GC with N extra nodes up, minus before, divided by N.
//
//	go test -run '^$' -bench IdleNodeMemory -benchtime 10x .
func BenchmarkIdleNodeMemory(b *testing.B) {
	e := newEnv(b)
	e.up("anchor")
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	before := heap()
	nodes := make([]*nexodus.Node, 0, b.N)
	for i := 0; i < b.N; i++ {
		nodes = append(nodes, e.up(fmt.Sprintf("idle%d", i)))
	}
	after := heap()
	b.ReportMetric(float64(after-before)/float64(b.N)/(1<<20), "MiB/node")
	for _, n := range nodes {
		n.Close()
	}
}
