package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/client"
)

// register finds this node's device: the saved one if its token still works, else a new
// registration with the auth key. It sets e.ctl to a client with the device's token.
func (e *Engine) register(ctx context.Context) (api.Device, error) {
	cfg := e.cfg
	saved, err := e.state.loadDevice()
	if err != nil {
		return api.Device{}, fmt.Errorf("nexodus: %w", err)
	}
	if saved.DeviceID != "" && saved.Token != "" && saved.ControlURL == cfg.ControlURL {
		c, err := e.newClient(saved.Token)
		if err != nil {
			return api.Device{}, err
		}
		dev, err := c.GetDevice(ctx, saved.DeviceID)
		switch {
		case err == nil && dev.PublicKey == e.pubKey.String():
			e.ctl = c
			return e.rename(ctx, *dev), nil
		case err == nil, errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrNotFound),
			errors.Is(err, client.ErrForbidden):
			e.log.Info("saved device is gone; registering again", "device", saved.DeviceID, "err", err)
		default:
			return api.Device{}, fmt.Errorf("nexodus: load device: %w", err)
		}
	}
	if cfg.AuthKey == "" {
		return api.Device{}, ErrNoAuthKey
	}
	reg, err := e.newClient(cfg.AuthKey)
	if err != nil {
		return api.Device{}, err
	}
	resp, err := reg.RegisterDevice(ctx, api.RegisterDeviceRequest{
		OrganizationID: cfg.OrganizationID,
		PublicKey:      e.pubKey.String(),
		Hostname:       cfg.Hostname,
		Ephemeral:      e.state.ephemeral(),
	})
	if err != nil {
		return api.Device{}, fmt.Errorf("nexodus: register device: %w", err)
	}
	if cfg.revokeAuthKey {
		e.revokeLoginToken(ctx, reg)
	}
	token, err := client.OpenDeviceToken(e.key, *resp)
	if err != nil {
		return api.Device{}, fmt.Errorf("nexodus: open device token: %w", err)
	}
	if e.ctl, err = e.newClient(token); err != nil {
		return api.Device{}, err
	}
	err = e.state.saveDevice(deviceState{
		ControlURL:     cfg.ControlURL,
		DeviceID:       resp.Device.ID,
		OrganizationID: resp.Device.OrganizationID,
		Token:          token,
	})
	if err != nil {
		return api.Device{}, fmt.Errorf("nexodus: %w", err)
	}
	return resp.Device, nil
}

// newClient returns a client with the given credential on the node's one connection pool.
func (e *Engine) newClient(token string) (*client.Client, error) {
	if e.base == nil {
		hc := e.cfg.HTTPClient
		if hc == nil {
			// A transport of the node's own (several nodes share no pool), and a bound on each
			// attempt; the event stream runs on a copy without it.
			hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: requestTimeout}
		}
		opts := []client.Option{client.WithLogger(e.log), client.WithHTTPClient(hc)}
		c, err := client.New(e.cfg.ControlURL, opts...)
		if err != nil {
			return nil, fmt.Errorf("nexodus: control client: %w", err)
		}
		e.base = c
	}
	return e.base.WithToken(token), nil
}

// rename asks for the configured hostname when a saved device comes back under another one
// (the Node's Hostname changed). A name another device holds stays with it: the device keeps
// the name it has, which Status shows.
func (e *Engine) rename(ctx context.Context, dev api.Device) api.Device {
	if hostnameEqual(e.cfg.Hostname, dev.Hostname) {
		return dev
	}
	renamed, err := e.ctl.UpdateDevice(ctx, dev.ID, api.UpdateDeviceRequest{Hostname: &e.cfg.Hostname})
	if err != nil {
		e.log.Warn("keeping the device's hostname", "hostname", dev.Hostname, "wanted", e.cfg.Hostname, "err", err)
		return dev
	}
	return *renamed
}
