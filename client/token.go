package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/internal/sealbox"
)

// OpenDeviceToken opens the device token sealed in a registration response with the device's
// WireGuard private key (the raw 32 bytes). Use the token with [Client.WithToken] to act as the
// device: read the peer list, watch events, update or delete the device, send signals.
func OpenDeviceToken(private [32]byte, resp api.RegisterDeviceResponse) (string, error) {
	if len(resp.SealedToken) == 0 {
		return "", errors.New("client: open device token: response carries no sealed token")
	}
	tok, err := sealbox.Open(private, resp.SealedToken)
	if err != nil {
		return "", fmt.Errorf("client: open device token: %w", err)
	}
	s := string(tok)
	if !strings.HasPrefix(s, api.DeviceTokenPrefix) || strings.ContainsAny(s, " \t\r\n") {
		return "", errors.New("client: open device token: not a device token")
	}
	return s, nil
}
