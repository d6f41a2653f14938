package main

// The benchmark's phases, driven over HTTP against the replicas.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/internal/sealbox"
	"github.com/nexodus-sdk/nexodus/key"
)

// bench is one run against running replicas.
type bench struct {
	o     options
	reps  []*replica
	admin string
	hc    *http.Client

	user   string   // the user token owning everything
	orgs   []string // organization IDs; orgs[0] is watched, the last one is not
	regKey []string // a multi-use registration key per organization
	devs   []device // all devices, in registration order: orgSize per organization
}

// device is a registered device. Watchers (the first -watchers) keep their token.
type device struct {
	id, org string
	priv    key.Key
	token   string
}

func newBench(o options, reps []*replica, admin string) *bench {
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, DisableCompression: true, IdleConnTimeout: time.Minute}
	return &bench{o: o, reps: reps, admin: admin, hc: &http.Client{Transport: tr}}
}

// base picks a replica round-robin by i.
func (b *bench) base(i int) string { return b.reps[i%len(b.reps)].base }

// call sends a JSON request and decodes a JSON answer into out (when not nil).
func (b *bench) call(ctx context.Context, base, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+api.Prefix+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// usage sums the replicas' usage (RSS: the largest).
func (b *bench) usage(ctx context.Context) (usage, error) {
	var sum usage
	for _, r := range b.reps {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.base+usagePath, nil)
		resp, err := b.hc.Do(req)
		if err != nil {
			cancel()
			return sum, err
		}
		var u usage
		err = json.NewDecoder(resp.Body).Decode(&u)
		resp.Body.Close()
		cancel()
		if err != nil {
			return sum, err
		}
		sum.CPU += u.CPU
		sum.RSS = max(sum.RSS, u.RSS)
		sum.MaxRSS = max(sum.MaxRSS, u.MaxRSS)
	}
	return sum, nil
}

func (b *bench) run(ctx context.Context) (*results, error) {
	res := &results{o: b.o}
	if err := b.setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	progress("registering %d devices", b.o.devices)
	if err := b.register(ctx, res); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	progress("opening %d streams", b.o.watchers)
	w, err := b.openWatchers(ctx, res)
	if err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	defer w.close()
	progress("timing %d changes on every stream", b.o.changes)
	if err := b.watchedChanges(ctx, w, res); err != nil {
		return nil, fmt.Errorf("watched changes: %w", err)
	}
	progress("%d changes in an unwatched organization", b.o.unwatched)
	if err := b.unwatchedChanges(ctx, res); err != nil {
		return nil, fmt.Errorf("unwatched changes: %w", err)
	}
	progress("%d peer-list GETs", b.o.gets)
	if err := b.peerListGets(ctx, res); err != nil {
		return nil, fmt.Errorf("peer list: %w", err)
	}
	u, err := b.usage(ctx)
	if err != nil {
		return nil, err
	}
	res.rss, res.maxRSS = u.RSS, u.MaxRSS
	return res, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "coordbench: "+format+"\n", args...)
}

// setup makes the user, the organizations and their registration keys.
func (b *bench) setup(ctx context.Context) error {
	var u api.CreateUserResponse
	if err := b.call(ctx, b.base(0), http.MethodPost, "/users", b.admin, api.CreateUserRequest{Username: "bench"}, &u); err != nil {
		return err
	}
	var tok api.Token
	if err := b.call(ctx, b.base(0), http.MethodPost, "/users/"+u.User.ID+"/tokens", b.admin, api.CreateTokenRequest{}, &tok); err != nil {
		return err
	}
	b.user = tok.Secret
	n := b.o.devices / b.o.orgSize
	if b.o.devices%b.o.orgSize != 0 {
		n++
	}
	for i := range n {
		var org api.Organization
		if err := b.call(ctx, b.base(0), http.MethodPost, "/organizations", b.user, api.CreateOrganizationRequest{Name: fmt.Sprintf("bench-%d", i)}, &org); err != nil {
			return err
		}
		var k api.RegKey
		if err := b.call(ctx, b.base(0), http.MethodPost, "/reg-keys", b.user, api.CreateRegKeyRequest{OrganizationID: org.ID}, &k); err != nil {
			return err
		}
		b.orgs, b.regKey = append(b.orgs, org.ID), append(b.regKey, k.Secret)
	}
	return nil
}

// register registers every device from -concurrency clients and times each registration.
func (b *bench) register(ctx context.Context, res *results) error {
	b.devs = make([]device, b.o.devices)
	lat := make([]time.Duration, b.o.devices)
	next := atomic.Int64{}
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range b.o.concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.o.devices {
					return
				}
				if err := b.registerOne(ctx, i, lat); err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
					next.Store(int64(b.o.devices))
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	res.regRate = float64(b.o.devices) / elapsed.Seconds()
	res.regLat = lat
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (b *bench) registerOne(ctx context.Context, i int, lat []time.Duration) error {
	priv, err := key.Generate()
	if err != nil {
		return err
	}
	org := i / b.o.orgSize
	req := api.RegisterDeviceRequest{
		PublicKey: priv.Public().String(), Hostname: fmt.Sprintf("dev-%d", i),
		Endpoints: []api.Endpoint{{Source: api.EndpointLocal, Address: fmt.Sprintf("192.0.2.%d:51820", i%250+1)}},
	}
	var resp api.RegisterDeviceResponse
	t0 := time.Now()
	if err := b.call(ctx, b.base(i), http.MethodPost, "/devices", b.regKey[org], req, &resp); err != nil {
		return err
	}
	lat[i] = time.Since(t0)
	d := device{id: resp.Device.ID, org: resp.Device.OrganizationID, priv: priv}
	if i < b.o.watchers {
		tok, err := sealbox.Open(priv, resp.SealedToken)
		if err != nil {
			return fmt.Errorf("open sealed token: %w", err)
		}
		d.token = string(tok)
	}
	b.devs[i] = d
	return nil
}

// watchers are the open event streams.
type watchers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// arrivals[k][w] is when watcher w saw its k-th device.updated; seen[k] counts them.
	mu       sync.Mutex
	arrivals [][]time.Time
	seen     []atomic.Int64
	synced   atomic.Int64
	failed   atomic.Int64
	err      atomic.Value
}

func (w *watchers) close() {
	w.cancel()
	w.wg.Wait()
}

// openWatchers opens the first organization's device streams and waits for every sync.
func (b *bench) openWatchers(ctx context.Context, res *results) (*watchers, error) {
	sctx, cancel := context.WithCancel(ctx)
	w := &watchers{cancel: cancel, arrivals: make([][]time.Time, b.o.changes), seen: make([]atomic.Int64, b.o.changes)}
	for k := range w.arrivals {
		w.arrivals[k] = make([]time.Time, b.o.watchers)
	}
	before, err := b.usage(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for i := range b.o.watchers {
		w.wg.Go(func() { b.watch(sctx, w, i) })
	}
	deadline := time.Now().Add(5 * time.Minute)
	for w.synced.Load()+w.failed.Load() < int64(b.o.watchers) {
		if time.Now().After(deadline) {
			w.close()
			return nil, errors.New("streams not synced within 5 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.syncTime = time.Since(start)
	if n := w.failed.Load(); n > 0 {
		w.close()
		return nil, fmt.Errorf("%d streams failed: %v", n, w.err.Load())
	}
	after, err := b.usage(ctx)
	if err != nil {
		w.close()
		return nil, err
	}
	res.syncCPU = (after.CPU - before.CPU) / time.Duration(b.o.watchers)
	return w, nil
}

// watch reads watcher i's event stream: it counts its sync and records each device.updated.
func (b *bench) watch(ctx context.Context, w *watchers, i int) {
	d := b.devs[i]
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base(i)+api.Prefix+"/devices/"+d.id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Accept", "text/event-stream")
	synced := false
	fail := func(err error) {
		if !synced && ctx.Err() == nil {
			w.err.Store(err)
			w.failed.Add(1)
		}
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		fail(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fail(errors.New(resp.Status))
		return
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var event string
	updates := 0
	for {
		line, err := r.ReadSlice('\n')
		isData := bytes.HasPrefix(line, []byte("data: "))
		if !isData && len(line) > 0 {
			line = bytes.Clone(line) // ReadSlice's buffer is reused below
		}
		for errors.Is(err, bufio.ErrBufferFull) { // a long data line (a sync): skip the rest
			_, err = r.ReadSlice('\n')
		}
		if err != nil {
			fail(err)
			return
		}
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = strings.TrimSpace(string(line[len("event: "):]))
			if event == api.EventDeviceUpdated && synced && updates < len(w.arrivals) {
				now := time.Now()
				w.mu.Lock()
				w.arrivals[updates][i] = now
				w.mu.Unlock()
				w.seen[updates].Add(1)
				updates++
			}
		case isData:
			if event == api.EventSync && !synced {
				synced = true
				w.synced.Add(1)
			}
		}
	}
}

// watchedChanges updates devices of the first organization one at a time (each with its own
// token, on replicas in turn) and records when each change reached every watcher.
func (b *bench) watchedChanges(ctx context.Context, w *watchers, res *results) error {
	for k := range b.o.changes {
		d := b.devs[k%b.o.watchers]
		eps := []api.Endpoint{{Source: api.EndpointLocal, Address: fmt.Sprintf("198.51.100.%d:%d", k%250+1, 40000+k)}}
		t0 := time.Now()
		if err := b.call(ctx, b.base(k), http.MethodPatch, "/devices/"+d.id, d.token, api.UpdateDeviceRequest{Endpoints: &eps}, nil); err != nil {
			return err
		}
		deadline := time.Now().Add(time.Minute)
		for w.seen[k].Load() < int64(b.o.watchers) {
			if time.Now().After(deadline) {
				return fmt.Errorf("change %d reached %d of %d watchers within a minute", k, w.seen[k].Load(), b.o.watchers)
			}
			time.Sleep(time.Millisecond)
		}
		w.mu.Lock()
		for _, at := range w.arrivals[k] {
			res.fanout = append(res.fanout, at.Sub(t0))
		}
		w.mu.Unlock()
	}
	return nil
}

// unwatchedChanges updates devices of the last organization (no stream follows it) with the
// owner's token and counts the replicas' CPU per change, less what they spend idle (the
// streams' heartbeats and presence renewals) in as long.
func (b *bench) unwatchedChanges(ctx context.Context, res *results) error {
	first := (len(b.orgs) - 1) * b.o.orgSize
	change := func(k int) error {
		d := b.devs[first+k%b.o.orgSize]
		eps := []api.Endpoint{{Source: api.EndpointLocal, Address: fmt.Sprintf("203.0.113.%d:%d", k%250+1, 40000+k)}}
		return b.call(ctx, b.base(k), http.MethodPatch, "/devices/"+d.id, b.user, api.UpdateDeviceRequest{Endpoints: &eps}, nil)
	}
	u0, err := b.usage(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for k := range b.o.unwatched {
		if err := change(k); err != nil {
			return err
		}
	}
	time.Sleep(200 * time.Millisecond) // let the replicas finish with the last one
	busy := time.Since(t0)
	u1, err := b.usage(ctx)
	if err != nil {
		return err
	}
	time.Sleep(busy)
	u2, err := b.usage(ctx)
	if err != nil {
		return err
	}
	idle := u2.CPU - u1.CPU
	res.unwatchedCPU = max(0, (u1.CPU-u0.CPU)-idle) / time.Duration(b.o.unwatched)
	return nil
}

// peerListGets times GETs of the first organization's peer list, to the body's last byte.
func (b *bench) peerListGets(ctx context.Context, res *results) error {
	for k := range b.o.gets {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base(k)+api.Prefix+"/organizations/"+b.orgs[0]+"/devices", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+b.user)
		t0 := time.Now()
		resp, err := b.hc.Do(req)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res.getLat = append(res.getLat, time.Since(t0))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET peer list: %s", resp.Status)
		}
		var out []json.RawMessage
		if err := json.Unmarshal(data, &out); err != nil {
			return err
		}
		if len(out) != b.o.orgSize {
			return fmt.Errorf("peer list has %d devices, want %d", len(out), b.o.orgSize)
		}
		res.getBytes = len(data)
	}
	return nil
}
