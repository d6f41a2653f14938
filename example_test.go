package nexodus_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/internal/devcoord"
)

// Two nodes of one organization: one serves HTTP on the mesh, the other calls it by hostname.
// The coordinator runs in-process here; in production ControlURL points at a shared one.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, _ := os.MkdirTemp("", "nexodus-example-")
	defer os.RemoveAll(dir)
	coord, err := devcoord.Start(ctx, filepath.Join(dir, "coord.db"), devcoord.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer coord.Close()
	alice, _ := coord.NewTenant(ctx, "alice")
	key, _ := alice.RegKey(ctx, "")

	server := &nexodus.Node{ControlURL: coord.URL, AuthKey: key, Hostname: "server"}
	defer server.Close()
	ln, err := server.Listen("tcp", ":80")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, _ := server.WhoIs(r.RemoteAddr)
		fmt.Fprintf(w, "hello %s", peer.Hostname)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	laptop := &nexodus.Node{ControlURL: coord.URL, AuthKey: key, Hostname: "laptop"}
	defer laptop.Close()
	hc := laptop.HTTPClient()
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://server/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: hello laptop
}

// A long-lived service keeps its identity in StateDir, so it comes back with the same tunnel
// addresses after a restart, and reacts to peers joining and leaving.
func ExampleNode_OnPeerChange() {
	n := &nexodus.Node{
		ControlURL: "https://coordinator.example.com",
		AuthKey:    os.Getenv("NEXODUS_AUTHKEY"),
		Hostname:   "billing",
		StateDir:   "/var/lib/billing/nexodus",
		OnPeerChange: func(ev nexodus.PeerEvent) {
			log.Printf("peer %s %s (%s)", ev.Peer.Hostname, ev.Type, ev.Peer.TunnelIPv4)
		},
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := n.Up(ctx)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("up as %s with %d peers", st.TunnelIPv4, len(st.Peers))
}

// Dial reaches a peer by hostname (or tunnel IP) with any TCP or UDP network.
func ExampleNode_Dial() {
	n := &nexodus.Node{ControlURL: "https://coordinator.example.com", AuthKey: os.Getenv("NEXODUS_AUTHKEY")}
	defer n.Close()
	conn, err := n.Dial(context.Background(), "tcp", "db:5432")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
}
