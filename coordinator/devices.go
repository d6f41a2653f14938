package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"slices"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/internal/sealbox"
)

// appendEvent stores an event of the organization's log inside tx. target limits it to one
// device's stream.
func (s *Server) appendEvent(ctx context.Context, tx store.Tx, orgID, target string, ev api.Event) error {
	ev.Revision = 0
	ev.OrganizationID = orgID
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = tx.AppendEvent(ctx, store.Event{
		OrganizationID: orgID, TargetDeviceID: target, Type: ev.Type, Data: data, CreatedAt: s.now(),
	})
	return err
}

func (s *Server) deviceEvent(ctx context.Context, tx store.Tx, typ string, d store.Device) error {
	ad := s.apiDevice(d)
	return s.appendEvent(ctx, tx, d.OrganizationID, "", api.Event{Type: typ, Device: &ad})
}

// deleteDeviceTx deletes a device inside tx and records device.removed in its organization.
func (s *Server) deleteDeviceTx(ctx context.Context, tx store.Tx, d store.Device) error {
	if err := tx.DeleteDevice(ctx, d.ID); err != nil {
		return notFound(err, "device not found")
	}
	return s.deviceEvent(ctx, tx, api.EventDeviceRemoved, d)
}

// orgPrefixes parses an organization's address ranges.
func orgPrefixes(o store.Organization) (netip.Prefix, netip.Prefix) {
	p4, _ := netip.ParsePrefix(o.IPv4CIDR)
	p6, _ := netip.ParsePrefix(o.IPv6CIDR)
	return p4, p6
}

func (s *Server) handleRegisterDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Kind != KindRegKey && p.Kind != KindUser {
		return errorf(ErrForbidden, "registering a device needs a registration key or a user token")
	}
	var req api.RegisterDeviceRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	pub, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return err
	}
	// A key sealbox cannot seal to (a low-order point) could never read its token.
	if _, err := sealbox.Seal(pub, []byte("probe")); err != nil {
		return errorf(ErrBadRequest, "public_key is not a usable Curve25519 key")
	}
	if err := validHostname(req.Hostname); err != nil {
		return err
	}
	eps, err := parseEndpoints(req.Endpoints)
	if err != nil {
		return err
	}
	orgID := req.OrganizationID
	if p.Kind == KindRegKey {
		if orgID != "" && orgID != p.OrganizationID {
			return errorf(ErrForbidden, "a registration key registers devices only into its own organization")
		}
		orgID = p.OrganizationID
	} else if err := checkID("organization_id", orgID); err != nil {
		return err
	}

	ctx := r.Context()
	secret := newSecret()
	var (
		dev              store.Device
		created, pending bool
	)
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		now := s.now()
		created, pending = false, false
		ownerID, ephemeral, regKeyID := p.UserID, false, ""
		if p.Kind == KindRegKey {
			k, err := tx.GetRegKey(ctx, p.RegKeyID)
			if err != nil {
				return authErr(err)
			}
			if err := s.regKeyUsable(ctx, tx, k); err != nil {
				return err
			}
			if k.SingleUse {
				if err := tx.MarkRegKeyUsed(ctx, k.ID); err != nil {
					return err
				}
			}
			ownerID, ephemeral, regKeyID = k.OwnerID, k.Ephemeral, k.ID
		} else if _, _, err := memberOf(ctx, tx, orgID, p.UserID); err != nil {
			return err
		}
		// A device may ask to be ephemeral (it keeps no state, so it will never come back as
		// itself); an ephemeral key makes it so regardless.
		ephemeral = ephemeral || req.Ephemeral
		o, err := tx.GetOrganization(ctx, orgID)
		if err != nil {
			return notFound(err, "organization not found")
		}
		p4, p6 := orgPrefixes(o)
		cps, err := parseChildPrefixes(req.ChildPrefixes, p4, p6)
		if err != nil {
			return err
		}
		devices, err := tx.ListDevices(ctx, orgID)
		if err != nil {
			return err
		}
		existing, err := tx.GetDeviceByPublicKey(ctx, req.PublicKey)
		switch {
		case err == nil:
			if existing.OrganizationID != orgID {
				// Public keys are unique across the coordinator; which organization has this
				// one is none of the caller's business.
				return errorf(ErrConflict, "this public key is already registered")
			}
			if p.Kind != KindUser || existing.OwnerID != p.UserID {
				// Anyone who may register into the organization can name any device's
				// public key (peer lists show them), so this proves nothing about who is
				// asking. Issue a pending token, sealed to the key: only the key's holder
				// can open and use it, and nothing else changes until it does (see
				// authDeviceToken). The device's current token keeps working meanwhile.
				dev = existing
				dev.PendingTokenID, dev.PendingTokenHash = newID(), hashSecret(secret)
				pending = true
				return tx.UpdateDevice(ctx, dev)
			}
			// The device's owner, with their own user token, may replace it outright.
			if hostnameTaken(devices, req.Hostname, existing.ID) {
				return errorf(ErrConflict, "hostname %q is taken in this organization", req.Hostname)
			}
			dev = existing
			dev.Hostname, dev.Endpoints, dev.SymmetricNAT, dev.ChildPrefixes = req.Hostname, storeEndpoints(eps), req.SymmetricNAT, cps
			dev.TokenID, dev.TokenHash = newID(), hashSecret(secret)
			dev.PendingTokenID, dev.PendingTokenHash = "", nil
			dev.LastSeenAt, dev.UpdatedAt = now, now
			if err := tx.UpdateDevice(ctx, dev); err != nil {
				return err
			}
			return s.deviceEvent(ctx, tx, api.EventDeviceUpdated, dev)
		case errors.Is(err, store.ErrNotFound):
		default:
			return err
		}
		if hostnameTaken(devices, req.Hostname, "") {
			return errorf(ErrConflict, "hostname %q is taken in this organization", req.Hostname)
		}
		a4, a6, err := allocDeviceAddrs(o, devices, "")
		if err != nil {
			return err
		}
		dev = store.Device{
			ID: newID(), OrganizationID: orgID, OwnerID: ownerID, RegKeyID: regKeyID,
			PublicKey: req.PublicKey, Hostname: req.Hostname, TunnelIPv4: a4.String(), TunnelIPv6: a6.String(),
			Endpoints: storeEndpoints(eps), SymmetricNAT: req.SymmetricNAT, ChildPrefixes: cps,
			Ephemeral: ephemeral, TokenID: newID(), TokenHash: hashSecret(secret),
			LastSeenAt: now, CreatedAt: now, UpdatedAt: now,
		}
		created = true
		if err := tx.CreateDevice(ctx, dev); err != nil {
			return conflict(err, "device conflicts with an existing one (public key or address)")
		}
		return s.deviceEvent(ctx, tx, api.EventDeviceAdded, dev)
	})
	if err != nil {
		return err
	}
	if dev.Ephemeral {
		s.hub.trackEphemeral(dev.ID, s.now())
	}
	sealed, err := sealbox.Seal(pub, []byte(formatToken(api.DeviceTokenPrefix, dev.ID, secret)))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.log.Info("device registered", "device_id", dev.ID, "org_id", dev.OrganizationID, "hostname", dev.Hostname,
		"new", created, "pending_token", pending, "by_kind", p.Kind)
	writeJSON(w, status, api.RegisterDeviceResponse{Device: s.apiDevice(dev), SealedToken: sealed, Pending: pending})
	return nil
}

func (s *Server) handleListDevices(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	ctx := r.Context()
	var out []api.Device
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		orgs, err := tx.ListOrganizationsForUser(ctx, p.UserID)
		if err != nil {
			return err
		}
		out = []api.Device{}
		for _, o := range orgs {
			ds, err := tx.ListDevices(ctx, o.ID)
			if err != nil {
				return err
			}
			out = append(out, s.apiDevices(ds)...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleOrgDevices serves the peer list: to members and to devices of the organization.
func (s *Server) handleOrgDevices(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Kind != KindUser && p.Kind != KindDevice {
		return errorf(ErrForbidden, "the peer list needs a user or device token")
	}
	id, err := pathID(r, "id", "organization id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	var out []api.Device
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		if p.Kind == KindUser {
			if _, _, err := memberOf(ctx, tx, id, p.UserID); err != nil {
				return err
			}
		} else if self, err := tx.GetDevice(ctx, p.DeviceID); err != nil || self.OrganizationID != id {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return errorf(ErrNotFound, "organization not found")
		}
		ds, err := tx.ListDevices(ctx, id)
		if err != nil {
			return err
		}
		out = s.apiDevices(ds)
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deviceAccess says how the caller relates to a device it can see.
type deviceAccess struct {
	self        bool // the device's own token
	deviceOwner bool // the user who owns the device
	orgOwner    bool // an owner of the device's organization
}

// loadDevice loads a device the caller can see: members of its organization and devices of
// its organization. Everybody else gets 404.
func loadDevice(ctx context.Context, tx store.Tx, p Principal, id string) (store.Device, deviceAccess, error) {
	d, err := tx.GetDevice(ctx, id)
	if err != nil {
		return d, deviceAccess{}, notFound(err, "device not found")
	}
	switch p.Kind {
	case KindUser:
		m, err := tx.GetMember(ctx, d.OrganizationID, p.UserID)
		if err != nil {
			return d, deviceAccess{}, notFound(err, "device not found")
		}
		return d, deviceAccess{deviceOwner: d.OwnerID == p.UserID, orgOwner: m.Role == api.RoleOwner}, nil
	case KindDevice:
		if d.ID == p.DeviceID {
			return d, deviceAccess{self: true}, nil
		}
		self, err := tx.GetDevice(ctx, p.DeviceID)
		if err != nil || self.OrganizationID != d.OrganizationID {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return d, deviceAccess{}, err
			}
			return d, deviceAccess{}, errorf(ErrNotFound, "device not found")
		}
		return d, deviceAccess{}, nil
	}
	return d, deviceAccess{}, errorf(ErrForbidden, "this route needs a user or device token")
}

func (s *Server) handleGetDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Kind != KindUser && p.Kind != KindDevice {
		return errorf(ErrForbidden, "this route needs a user or device token")
	}
	id, err := pathID(r, "id", "device id")
	if err != nil {
		return err
	}
	var d store.Device
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		var acc deviceAccess
		d, acc, err = loadDevice(r.Context(), tx, p, id)
		if err != nil {
			return err
		}
		if p.Kind == KindDevice && !acc.self {
			return errorf(ErrForbidden, "a device token may read only its own device (use the peer list)")
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.apiDevice(d))
	return nil
}

func (s *Server) handleUpdateDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Kind != KindUser && p.Kind != KindDevice {
		return errorf(ErrForbidden, "this route needs a user or device token")
	}
	id, err := pathID(r, "id", "device id")
	if err != nil {
		return err
	}
	var req api.UpdateDeviceRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.Hostname != nil {
		if err := validHostname(*req.Hostname); err != nil {
			return err
		}
	}
	var eps []api.Endpoint
	if req.Endpoints != nil {
		if eps, err = parseEndpoints(*req.Endpoints); err != nil {
			return err
		}
	}
	if req.OrganizationID != nil {
		if err := checkID("organization_id", *req.OrganizationID); err != nil {
			return err
		}
	}
	ctx := r.Context()
	var (
		dev   store.Device
		moved bool
		from  string
	)
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		moved = false
		d, acc, err := loadDevice(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if !acc.self && !acc.deviceOwner {
			return errorf(ErrForbidden, "only the device's owner or the device itself may update it")
		}
		from = d.OrganizationID
		target := d.OrganizationID
		if req.OrganizationID != nil && *req.OrganizationID != d.OrganizationID {
			if p.Kind != KindUser {
				return errorf(ErrForbidden, "a device cannot move itself; its owner moves it")
			}
			target = *req.OrganizationID
			if _, _, err := memberOf(ctx, tx, target, d.OwnerID); err != nil {
				return err
			}
			moved = true
		}
		o, err := tx.GetOrganization(ctx, target)
		if err != nil {
			return notFound(err, "organization not found")
		}
		nd := d
		nd.OrganizationID = target
		if req.Hostname != nil {
			nd.Hostname = *req.Hostname
		}
		if req.Endpoints != nil {
			nd.Endpoints = storeEndpoints(eps)
		}
		if req.SymmetricNAT != nil {
			nd.SymmetricNAT = *req.SymmetricNAT
		}
		p4, p6 := orgPrefixes(o)
		if req.ChildPrefixes != nil {
			if nd.ChildPrefixes, err = parseChildPrefixes(*req.ChildPrefixes, p4, p6); err != nil {
				return err
			}
		} else if moved {
			if nd.ChildPrefixes, err = parseChildPrefixes(nd.ChildPrefixes, p4, p6); err != nil {
				return err
			}
		}
		devices, err := tx.ListDevices(ctx, target)
		if err != nil {
			return err
		}
		if hostnameTaken(devices, nd.Hostname, d.ID) {
			return errorf(ErrConflict, "hostname %q is taken in the organization", nd.Hostname)
		}
		if moved {
			a4, a6, err := allocDeviceAddrs(o, devices, d.ID)
			if err != nil {
				return err
			}
			nd.TunnelIPv4, nd.TunnelIPv6 = a4.String(), a6.String()
		}
		if !moved && deviceEqual(d, nd) {
			dev = d
			return nil
		}
		now := s.now()
		nd.UpdatedAt, nd.LastSeenAt = now, now
		if err := tx.UpdateDevice(ctx, nd); err != nil {
			return conflict(err, "device conflicts with an existing one")
		}
		dev = nd
		if !moved {
			return s.deviceEvent(ctx, tx, api.EventDeviceUpdated, nd)
		}
		if err := s.deviceEvent(ctx, tx, api.EventDeviceRemoved, d); err != nil {
			return err
		}
		if err := s.deviceEvent(ctx, tx, api.EventDeviceAdded, nd); err != nil {
			return err
		}
		// The moved device's own stream follows it: a sync addressed to it starts its view of
		// the new organization, also for a stream resuming from before the move.
		devices, err = tx.ListDevices(ctx, target)
		if err != nil {
			return err
		}
		return s.appendEvent(ctx, tx, target, nd.ID, api.Event{Type: api.EventSync, Devices: s.apiDevices(devices)})
	})
	if err != nil {
		return err
	}
	if moved {
		s.log.Info("device moved", "device_id", id, "from", from, "to", dev.OrganizationID)
	}
	writeJSON(w, http.StatusOK, s.apiDevice(dev))
	return nil
}

func deviceEqual(a, b store.Device) bool {
	return a.OrganizationID == b.OrganizationID && a.Hostname == b.Hostname && a.SymmetricNAT == b.SymmetricNAT &&
		slices.Equal(a.Endpoints, b.Endpoints) && slices.Equal(a.ChildPrefixes, b.ChildPrefixes)
}

func (s *Server) handleDeleteDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Kind != KindUser && p.Kind != KindDevice {
		return errorf(ErrForbidden, "this route needs a user or device token")
	}
	id, err := pathID(r, "id", "device id")
	if err != nil {
		return err
	}
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		d, acc, err := loadDevice(r.Context(), tx, p, id)
		if err != nil {
			return err
		}
		if !acc.self && !acc.deviceOwner && !acc.orgOwner {
			return errorf(ErrForbidden, "only the device's owner, an owner of the organization or the device itself may delete it")
		}
		return s.deleteDeviceTx(r.Context(), tx, d)
	})
	if err != nil {
		return err
	}
	s.hub.forgetEphemeral(id)
	s.log.Info("device deleted", "device_id", id, "by_kind", p.Kind)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleSignal relays an opaque message from the calling device to a device of the same
// organization, as a signal event on the receiver's stream.
func (s *Server) handleSignal(w http.ResponseWriter, r *http.Request, p Principal) error {
	if p.Kind != KindDevice {
		return errorf(ErrForbidden, "signaling needs a device token")
	}
	id, err := pathID(r, "id", "device id")
	if err != nil {
		return err
	}
	var req api.SignalRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if len(req.Payload) == 0 {
		return errorf(ErrBadRequest, "payload is required")
	}
	if len(req.Payload) > api.MaxSignalPayload {
		return errorf(ErrTooLarge, "payload larger than %d bytes", api.MaxSignalPayload)
	}
	ctx := r.Context()
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		self, err := tx.GetDevice(ctx, p.DeviceID)
		if err != nil {
			return authErr(err)
		}
		to, err := tx.GetDevice(ctx, id)
		if err != nil || to.OrganizationID != self.OrganizationID {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return errorf(ErrNotFound, "device not found")
		}
		return s.appendEvent(ctx, tx, to.OrganizationID, to.ID, api.Event{
			Type:   api.EventSignal,
			Signal: &api.Signal{From: self.ID, To: to.ID, Payload: req.Payload},
		})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
