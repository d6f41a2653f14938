package relay_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"

	"github.com/nexodus-sdk/nexodus/relay"
)

// A relay on a host with public address 198.51.100.10: two UDP ports (advertise both as STUN
// servers so devices can detect a symmetric NAT) and TCP for networks that block UDP.
func ExampleNew() {
	srv, err := relay.New(context.Background(), relay.Config{
		Secret:       []byte(os.Getenv("NEXODUS_RELAY_SECRET")), // the coordinator's RelaySecret
		PublicIP:     netip.MustParseAddr("198.51.100.10"),
		UDPListen:    []string{"0.0.0.0:3478", "0.0.0.0:3479"},
		TCPListen:    []string{"0.0.0.0:3478"},
		QuotaPerUser: 64,
		Logger:       slog.Default(),
	})
	if err != nil {
		slog.Error("relay", "err", err)
		return
	}
	defer srv.Close()
	slog.Info("relay up", "addrs", srv.Addrs())
}
