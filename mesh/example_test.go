package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
	"github.com/nexodus-sdk/nexodus/mesh"
)

// Two meshes in one process on 127.0.0.1, each told the other's key, tunnel address and UDP
// endpoint (what the SDK learns from its coordinator), talk TCP over WireGuard.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(tunnelIP string) (*mesh.Mesh, netip.Addr) {
		priv, err := key.Generate()
		if err != nil {
			log.Fatal(err)
		}
		ip := netip.MustParseAddr(tunnelIP)
		m, err := mesh.New(ctx, mesh.Config{
			PrivateKey: priv,
			Addresses:  []netip.Addr{ip},
			ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		})
		if err != nil {
			log.Fatal(err)
		}
		return m, ip
	}
	a, ipA := start("100.64.0.1")
	defer a.Close()
	b, ipB := start("100.64.0.2")
	defer b.Close()
	peer := func(m *mesh.Mesh, ip netip.Addr) mesh.Peer {
		return mesh.Peer{
			PublicKey:  m.PublicKey(),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(ip, 32)},
			Endpoints:  []netip.AddrPort{m.LocalAddr()},
		}
	}
	if err := a.SetPeers(ctx, []mesh.Peer{peer(b, ipB)}); err != nil {
		log.Fatal(err)
	}
	if err := b.SetPeers(ctx, []mesh.Peer{peer(a, ipA)}); err != nil {
		log.Fatal(err)
	}

	// b serves one connection on its tunnel address, answering in upper case.
	ln, err := b.Listen("tcp", netip.AddrPortFrom(ipB, 80).String())
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		msg, _ := io.ReadAll(c)
		fmt.Fprintf(c, "%s from %v", bytes.ToUpper(msg), c.RemoteAddr().(*net.TCPAddr).IP)
	}()

	c, err := a.DialContext(ctx, "tcp", netip.AddrPortFrom(ipB, 80).String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "hello")
	c.(interface{ CloseWrite() error }).CloseWrite()
	reply, err := io.ReadAll(c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply))
	<-served
	// Output: HELLO from 100.64.0.1
}
