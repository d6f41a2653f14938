package coordinator

// Device registration: a registration key or a member's user token registers a WireGuard
// public key into an organization; a known key gets its device back with a token sealed to it
// (pending unless the device's owner asks, see the package documentation).

import (
	"context"
	"errors"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
	"github.com/nexodus-sdk/nexodus/internal/sealbox"
	"github.com/nexodus-sdk/nexodus/key"
)

// registration is a checked api.RegisterDeviceRequest and what the credential adds to it.
type registration struct {
	req       api.RegisterDeviceRequest
	pub       key.Key
	endpoints []api.Endpoint // normalized
	orgID     string         // where the device goes
	secret    string         // of the device token the answer carries
}

// devicePublicKey reads a device's public key (key.Parse's one text form) and refuses one
// that no token could be sealed to.
func devicePublicKey(s string) (key.Key, error) {
	pub, err := key.Parse(s)
	if err != nil {
		return key.Key{}, errorf(ErrBadRequest, "public_key must be 32 bytes in standard base64")
	}
	// A key sealbox cannot seal to (a low-order point) could never read its token.
	if _, err := sealbox.Seal(pub, []byte("probe")); err != nil {
		return key.Key{}, errorf(ErrBadRequest, "public_key is not a usable Curve25519 key")
	}
	return pub, nil
}

func parseRegistration(p Principal, req api.RegisterDeviceRequest) (registration, error) {
	reg := registration{req: req, orgID: req.OrganizationID, secret: newSecret()}
	var err error
	if reg.pub, err = devicePublicKey(req.PublicKey); err != nil {
		return reg, err
	}
	if err := validHostname(req.Hostname); err != nil {
		return reg, err
	}
	if reg.endpoints, err = parseEndpoints(req.Endpoints); err != nil {
		return reg, err
	}
	if p.Kind == KindRegKey {
		if reg.orgID != "" && reg.orgID != p.OrganizationID {
			return reg, errorf(ErrForbidden, "a registration key registers devices only into its own organization")
		}
		reg.orgID = p.OrganizationID
		return reg, nil
	}
	return reg, checkID("organization_id", reg.orgID)
}

// registrant is who registers a device and what their credential says about it.
type registrant struct {
	ownerID   string
	ephemeral bool   // a key for ephemeral devices
	regKeyID  string // the registration key used, if any
}

// place is where a registration goes: the organization and the checked child prefixes. (Not
// its devices: registration reads only the rows it needs — one hostname, the taken addresses.)
type place struct {
	org           store.Organization
	childPrefixes []string
}

// registerDevice registers a device, or answers the known device of the public key. created
// reports a new device.
func (s *Server) registerDevice(ctx context.Context, p Principal, req api.RegisterDeviceRequest) (resp api.RegisterDeviceResponse, created bool, err error) {
	reg, err := parseRegistration(p, req)
	if err != nil {
		return resp, false, err
	}
	type result struct {
		dev              store.Device
		created, pending bool
	}
	res, err := inTx(ctx, s.store, func(tx store.Tx) (result, error) {
		who, err := s.registrant(ctx, tx, p, reg.orgID)
		if err != nil {
			return result{}, err
		}
		at, err := s.place(ctx, tx, reg)
		if err != nil {
			return result{}, err
		}
		existing, err := tx.GetDeviceByPublicKey(ctx, reg.pub.String())
		switch {
		case err == nil:
			dev, pending, err := s.reregister(ctx, tx, p, reg, at, existing)
			return result{dev: dev, pending: pending}, err
		case !errors.Is(err, store.ErrNotFound):
			return result{}, err
		}
		dev, err := s.newDevice(ctx, tx, reg, at, who)
		return result{dev: dev, created: true}, err
	})
	if err != nil {
		// Mapped only now: inside the transaction the engine must see the uniqueness
		// violation itself, which may be a concurrent registration's doing and worth a retry.
		return resp, false, conflict(err, "device conflicts with an existing one (public key or address)")
	}
	sealed, err := sealbox.Seal(reg.pub, []byte(formatToken(api.DeviceTokenPrefix, res.dev.ID, reg.secret)))
	if err != nil {
		return resp, false, err
	}
	s.log.Info("device registered", "device_id", res.dev.ID, "org_id", res.dev.OrganizationID, "hostname", res.dev.Hostname,
		"new", res.created, "pending_token", res.pending, "by_kind", p.Kind)
	return api.RegisterDeviceResponse{Device: s.apiDevice(res.dev), SealedToken: sealed, Pending: res.pending}, res.created, nil
}

// registrant checks the caller's right to register into orgID inside tx: a usable
// registration key (a single-use one is used up now) or a member's user token.
func (s *Server) registrant(ctx context.Context, tx store.Tx, p Principal, orgID string) (registrant, error) {
	if p.Kind != KindRegKey {
		_, _, err := memberOf(ctx, tx, orgID, p.UserID)
		return registrant{ownerID: p.UserID}, err
	}
	k, err := tx.GetRegKey(ctx, p.RegKeyID)
	if err != nil {
		return registrant{}, authErr(err)
	}
	if err := s.regKeyUsable(ctx, tx, k); err != nil {
		return registrant{}, err
	}
	if k.SingleUse {
		if err := tx.MarkRegKeyUsed(ctx, k.ID); err != nil {
			return registrant{}, err
		}
	}
	return registrant{ownerID: k.OwnerID, ephemeral: k.Ephemeral, regKeyID: k.ID}, nil
}

// place loads where a registration goes.
func (s *Server) place(ctx context.Context, tx store.Tx, reg registration) (place, error) {
	o, err := tx.GetOrganization(ctx, reg.orgID)
	if err != nil {
		return place{}, notFound(err, "organization not found")
	}
	p4, p6 := orgPrefixes(o)
	cps, err := parseChildPrefixes(reg.req.ChildPrefixes, p4, p6)
	if err != nil {
		return place{}, err
	}
	return place{org: o, childPrefixes: cps}, nil
}

// reregister answers a registration of the known device dev. Anyone who may register into the
// organization can name any device's public key (peer lists show them), so this proves
// nothing about who is asking: unless the caller is the device's owner with their own user
// token, nothing changes but a pending token, sealed to the key, which only the key's holder
// can open and use (see authDeviceToken). The device's current token keeps working meanwhile.
func (s *Server) reregister(ctx context.Context, tx store.Tx, p Principal, reg registration, at place, dev store.Device) (_ store.Device, pending bool, _ error) {
	if dev.OrganizationID != reg.orgID {
		// Public keys are unique across the coordinator; which organization has this one is
		// none of the caller's business.
		return dev, false, errorf(ErrConflict, "this public key is already registered")
	}
	if p.Kind != KindUser || dev.OwnerID != p.UserID {
		dev.PendingTokenID, dev.PendingTokenHash = newID(), hashSecret(reg.secret)
		return dev, true, tx.UpdateDevice(ctx, dev)
	}
	// The device's owner, with their own user token, may replace it outright.
	if _, taken, err := hostnameHolder(ctx, tx, reg.orgID, reg.req.Hostname, dev.ID); err != nil {
		return dev, false, err
	} else if taken {
		return dev, false, errorf(ErrConflict, "hostname %q is taken in this organization", reg.req.Hostname)
	}
	now := s.now()
	dev.Hostname, dev.Endpoints, dev.SymmetricNAT, dev.ChildPrefixes = reg.req.Hostname, storeEndpoints(reg.endpoints), reg.req.SymmetricNAT, at.childPrefixes
	dev.TokenID, dev.TokenHash = newID(), hashSecret(reg.secret)
	dev.PendingTokenID, dev.PendingTokenHash = "", nil
	dev.LastSeenAt, dev.UpdatedAt = now, now
	if err := tx.UpdateDevice(ctx, dev); err != nil {
		return dev, false, err
	}
	return dev, false, s.deviceEvent(ctx, tx, api.EventDeviceUpdated, dev)
}

// newDevice creates the device of a new public key with the organization's lowest free
// addresses.
func (s *Server) newDevice(ctx context.Context, tx store.Tx, reg registration, at place, who registrant) (store.Device, error) {
	hostname, err := s.claimHostname(ctx, tx, reg.orgID, reg.req.Hostname, who)
	if err != nil {
		return store.Device{}, err
	}
	// Read after claimHostname, which may have deleted the name's holder and freed its addresses.
	taken, err := tx.ListDeviceAddresses(ctx, reg.orgID)
	if err != nil {
		return store.Device{}, err
	}
	a4, a6, err := allocDeviceAddrs(at.org, taken, "")
	if err != nil {
		return store.Device{}, err
	}
	now := s.now()
	dev := store.Device{
		ID: newID(), OrganizationID: reg.orgID, OwnerID: who.ownerID, RegKeyID: who.regKeyID,
		PublicKey: reg.pub.String(), Hostname: hostname, TunnelIPv4: a4.String(), TunnelIPv6: a6.String(),
		Endpoints: storeEndpoints(reg.endpoints), SymmetricNAT: reg.req.SymmetricNAT, ChildPrefixes: at.childPrefixes,
		// A device may ask to be ephemeral (it keeps no state, so it will never come back as
		// itself); an ephemeral key makes it so regardless.
		Ephemeral: who.ephemeral || reg.req.Ephemeral, TokenID: newID(), TokenHash: hashSecret(reg.secret),
		LastSeenAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if err := tx.CreateDevice(ctx, dev); err != nil {
		return store.Device{}, err // registerDevice maps a conflict, after the engine's retries
	}
	return dev, s.deviceEvent(ctx, tx, api.EventDeviceAdded, dev)
}
