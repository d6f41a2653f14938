package client

import (
	"context"
	"net/http"

	"github.com/nexodus-sdk/nexodus/api"
)

// RelayConfig returns the STUN servers, TURN URLs and fresh TURN credentials for the device
// deviceID (GET /devices/{id}/relay, the device's own token): its organization's relays, or
// the coordinator's. Without a relay secret the TURN fields are empty. The credentials expire
// at ExpiresAt; the device's event stream brings fresh ones (api.EventRelay) before then, so
// fetch new ones yourself only when no relay event has come (for example once three quarters
// of the lifetime have passed).
func (c *Client) RelayConfig(ctx context.Context, deviceID string) (*api.RelayConfig, error) {
	var out api.RelayConfig
	if err := c.do(ctx, "get relay config", http.MethodGet, c.url("devices", deviceID, "relay"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
