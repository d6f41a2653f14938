package client

import (
	"context"
	"net/http"

	"github.com/nexodus-sdk/nexodus/api"
)

// RelayConfig returns the STUN servers, TURN URLs and fresh TURN credentials for the device
// deviceID (GET /devices/{id}/relay, the device's own token). Without a relay secret on the
// coordinator the TURN fields are empty. The credentials expire at ExpiresAt; fetch new ones
// before then (for example once two thirds of the lifetime have passed).
func (c *Client) RelayConfig(ctx context.Context, deviceID string) (*api.RelayConfig, error) {
	var out api.RelayConfig
	if err := c.do(ctx, "get relay config", http.MethodGet, c.url("devices", deviceID, "relay"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
