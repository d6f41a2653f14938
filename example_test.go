package nexodus_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
	"github.com/nexodus-sdk/nexodus/coordinator"
	"github.com/nexodus-sdk/nexodus/coordinator/store/sqlite"
)

// Two nodes of one organization: one serves HTTP on the mesh, the other calls it by hostname.
// The coordinator runs in-process here (SQLite storage, its HTTP API on a test server) and is
// bootstrapped through its API: an admin makes a user, the user a registration key. In
// production ControlURL points at a shared coordinator and the key comes from its operator.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "nexodus-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	const adminToken = "example-admin-token-0123456789"
	store, err := sqlite.Open(ctx, filepath.Join(dir, "coord.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	coord, err := coordinator.New(ctx, coordinator.Config{Store: store, AdminToken: adminToken})
	if err != nil {
		log.Fatal(err)
	}
	defer coord.Close()
	hs := httptest.NewServer(coord)
	defer hs.Close()

	admin, err := client.New(hs.URL, client.WithToken(adminToken))
	if err != nil {
		log.Fatal(err)
	}
	defer admin.CloseIdleConnections()
	user, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	token, err := admin.CreateToken(ctx, user.User.ID, api.CreateTokenRequest{Description: "example"})
	if err != nil {
		log.Fatal(err)
	}
	alice, err := client.New(hs.URL, client.WithToken(token.Secret))
	if err != nil {
		log.Fatal(err)
	}
	defer alice.CloseIdleConnections()
	regKey, err := alice.CreateRegKey(ctx, api.CreateRegKeyRequest{
		OrganizationID: user.PersonalOrganizationID, Description: "example",
	})
	if err != nil {
		log.Fatal(err)
	}
	key := regKey.Secret

	server := &nexodus.Node{ControlURL: hs.URL, AuthKey: key, Hostname: "server"}
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

	laptop := &nexodus.Node{ControlURL: hs.URL, AuthKey: key, Hostname: "laptop"}
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
