package main

// The figures a run measured, and their Markdown rows.

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// results are what one run measured.
type results struct {
	o            options
	regRate      float64
	regLat       []time.Duration // in registration order
	syncTime     time.Duration   // every stream opened and synced
	syncCPU      time.Duration   // coordinator CPU per stream synced
	fanout       []time.Duration // change → watcher, every change × every watcher
	unwatchedCPU time.Duration   // coordinator CPU per change in an unwatched organization
	getLat       []time.Duration
	getBytes     int
	rss, maxRSS  int64
}

// pct is the p-th percentile (0–100) of ds, nearest rank.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func (r *results) print(w io.Writer, setup string) {
	tail := r.regLat[len(r.regLat)*9/10:]
	fmt.Fprintf(w, "\n| figure (%s) | measured |\n|---|---:|\n", setup)
	fmt.Fprintf(w, "| registrations per second (%d concurrent clients) | %.0f |\n", r.o.concurrency, r.regRate)
	fmt.Fprintf(w, "| registration latency p50 / p99 | %s / %s (the last 10 %%: p50 %s) |\n",
		ms(pct(r.regLat, 50)), ms(pct(r.regLat, 99)), ms(pct(tail, 50)))
	fmt.Fprintf(w, "| %d streams fully synced | %.2f s, %s CPU per stream |\n", r.o.watchers, r.syncTime.Seconds(), ms(r.syncCPU))
	fmt.Fprintf(w, "| one device change → all %d watchers: p50 / p99 / max | %s / %s / %s |\n",
		r.o.watchers, ms(pct(r.fanout, 50)), ms(pct(r.fanout, 99)), ms(pct(r.fanout, 100)))
	fmt.Fprintf(w, "| CPU spent on a change in an organization nobody watches | %s |\n", ms(r.unwatchedCPU))
	fmt.Fprintf(w, "| peer-list GET, %d devices (%d KiB) p50 | %s |\n", r.o.orgSize, r.getBytes/1024, ms(pct(r.getLat, 50)))
	fmt.Fprintf(w, "| coordinator RSS (largest replica; peak) | %d MiB (peak %d MiB) |\n", r.rss>>20, r.maxRSS>>20)
}
