package client_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
)

// An operator creates a user and an API token with the admin token; the user then creates an
// organization and a registration key for its devices.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin, err := client.New("http://127.0.0.1:8080", client.WithToken("ADMIN-TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	user, err := admin.CreateUser(ctx, api.CreateUserRequest{Username: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, user.User.ID, api.CreateTokenRequest{Description: "laptop"})
	if err != nil {
		log.Fatal(err)
	}

	alice := admin.WithToken(tok.Secret)
	org, err := alice.CreateOrganization(ctx, api.CreateOrganizationRequest{Name: "acme"})
	if errors.Is(err, client.ErrConflict) {
		log.Fatal("the name acme is taken")
	} else if err != nil {
		log.Fatal(err)
	}
	key, err := alice.CreateRegKey(ctx, api.CreateRegKeyRequest{OrganizationID: org.ID, SingleUse: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("registration key for", org.Name, "(shown once):", key.Secret)
}

// A device registers with a registration key, opens its sealed device token with its WireGuard
// private key and follows its event stream.
func ExampleClient_WatchDevice() {
	ctx := context.Background()
	wgKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("https://nexodus.example.com", client.WithToken("nxk_REGISTRATION-KEY"))
	if err != nil {
		log.Fatal(err)
	}
	resp, err := c.RegisterDevice(ctx, api.RegisterDeviceRequest{
		PublicKey: base64.StdEncoding.EncodeToString(wgKey.PublicKey().Bytes()),
		Hostname:  "laptop",
	})
	if err != nil {
		log.Fatal(err)
	}
	var priv [32]byte
	copy(priv[:], wgKey.Bytes())
	token, err := client.OpenDeviceToken(priv, *resp)
	if err != nil {
		log.Fatal(err)
	}
	device := c.WithToken(token)

	events := device.WatchDevice(ctx, resp.Device.ID, client.WatchOptions{
		OnState: func(connected bool, err error) { log.Printf("connected=%v err=%v", connected, err) },
	})
	defer events.Close()
	for {
		ev, err := events.Next(ctx)
		if err != nil {
			log.Fatal(err) // a credential error, or ctx ended: the stream has ended
		}
		switch ev.Type {
		case api.EventSync:
			fmt.Println("peers:", len(ev.Devices))
		case api.EventDeviceAdded, api.EventDeviceUpdated, api.EventDeviceRemoved:
			fmt.Println(ev.Type, ev.Device.Hostname)
		case api.EventSignal:
			fmt.Printf("signal from %s: %d bytes\n", ev.Signal.From, len(ev.Signal.Payload))
		}
		// events.Revision() can be saved and passed as WatchOptions.AfterRevision later.
	}
}
