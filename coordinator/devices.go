package coordinator

// Devices after registration: reading them and the peer list, updating (endpoints, hostname,
// moving to another organization), deleting, and relaying signals between peers.

import (
	"context"
	"net/netip"
	"slices"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// deleteDeviceTx deletes a device inside tx and records device.removed in its organization,
// with the reason its own stream is told (api.ReasonDeviceRemoved, or e.g. ReasonUserDeleted
// when it goes with its user).
func (s *Server) deleteDeviceTx(ctx context.Context, tx store.Tx, d store.Device, reason api.Reason) error {
	if err := tx.DeleteDevice(ctx, d.ID); err != nil {
		return notFound(err, "device not found")
	}
	ad := s.apiDevice(d)
	return s.appendEvent(ctx, tx, d.OrganizationID, "", api.Event{Type: api.EventDeviceRemoved, Device: &ad, Reason: reason})
}

// orgPrefixes parses an organization's address ranges.
func orgPrefixes(o store.Organization) (netip.Prefix, netip.Prefix) {
	p4, _ := netip.ParsePrefix(o.IPv4CIDR)
	p6, _ := netip.ParsePrefix(o.IPv6CIDR)
	return p4, p6
}

// listDevices lists the devices of every organization the caller is a member of.
func (s *Server) listDevices(ctx context.Context, p Principal) ([]api.Device, error) {
	return inTx(ctx, s.store, func(tx store.Tx) ([]api.Device, error) {
		orgs, err := tx.ListOrganizationsForUser(ctx, p.UserID)
		if err != nil {
			return nil, err
		}
		return perOrg(ctx, orgs, tx.ListDevices, s.apiDevice)
	})
}

// orgDevices is the peer list (for the console): for members and for devices of the
// organization.
func (s *Server) orgDevices(ctx context.Context, p Principal, id string) ([]api.Device, error) {
	var ds []store.Device
	err := s.store.View(ctx, func(tx store.Tx) error {
		if err := mayReadPeers(ctx, tx, p, id); err != nil {
			return err
		}
		var err error
		ds, err = tx.ListDevices(ctx, id)
		return err
	})
	return s.apiDevices(ds), err
}

// orgPeerList is the peer list as the API answers it: the peer-list cache's JSON
// (peerlist.go), shared with the streams' syncs.
func (s *Server) orgPeerList(ctx context.Context, p Principal, id string) (rawJSON, error) {
	var list *peerList
	err := s.store.View(ctx, func(tx store.Tx) error {
		if err := mayReadPeers(ctx, tx, p, id); err != nil {
			return err
		}
		var err error
		list, err = s.peerListAt(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return list.appendJSON(make([]byte, 0, list.size+len(list.ids)*8+2), s.hub), nil
}

// mayReadPeers checks that p may read the organization's peer list: a member, or a device of
// the organization.
func mayReadPeers(ctx context.Context, tx store.Tx, p Principal, orgID string) error {
	if p.Kind == KindUser {
		_, _, err := memberOf(ctx, tx, orgID, p.UserID)
		return err
	}
	_, err := inOrg(ctx, tx, p.DeviceID, orgID, "organization not found")
	return err
}

func (s *Server) getDevice(ctx context.Context, p Principal, id string) (api.Device, error) {
	return inTx(ctx, s.store, func(tx store.Tx) (api.Device, error) {
		d, acc, err := loadDevice(ctx, tx, p, id)
		if err != nil {
			return api.Device{}, err
		}
		if p.Kind == KindDevice && !acc.self {
			return api.Device{}, errorf(ErrForbidden, "a device token may read only its own device (use the peer list)")
		}
		return s.apiDevice(d), nil
	})
}

// deviceUpdate is a checked api.UpdateDeviceRequest.
type deviceUpdate struct {
	api.UpdateDeviceRequest
	endpoints []api.Endpoint // normalized, when set
}

func parseDeviceUpdate(req api.UpdateDeviceRequest) (deviceUpdate, error) {
	u := deviceUpdate{UpdateDeviceRequest: req}
	if req.Hostname != nil {
		if err := validHostname(*req.Hostname); err != nil {
			return u, err
		}
	}
	if req.Endpoints != nil {
		var err error
		if u.endpoints, err = parseEndpoints(*req.Endpoints); err != nil {
			return u, err
		}
	}
	if req.OrganizationID != nil {
		if err := checkID("organization_id", *req.OrganizationID); err != nil {
			return u, err
		}
	}
	return u, nil
}

// updateDevice changes a device for its owner or itself; only the owner moves it to another
// organization they belong to, where it gets new addresses.
func (s *Server) updateDevice(ctx context.Context, p Principal, id string, req api.UpdateDeviceRequest) (api.Device, error) {
	u, err := parseDeviceUpdate(req)
	if err != nil {
		return api.Device{}, err
	}
	var from string
	charged := false // once, though the transaction may be retried
	dev, err := inTx(ctx, s.store, func(tx store.Tx) (store.Device, error) {
		d, acc, err := loadDevice(ctx, tx, p, id)
		if err != nil {
			return d, err
		}
		if !acc.self && !acc.deviceOwner {
			return d, errorf(ErrForbidden, "only the device's owner or the device itself may update it")
		}
		// Charged to the device only now, so that nobody who may not update it spends its budget.
		if !charged {
			charged = true
			if err := s.limitDeviceUpdate(d.ID, u.OrganizationID != nil && *u.OrganizationID != d.OrganizationID); err != nil {
				return d, err
			}
		}
		from = d.OrganizationID
		return s.updateDeviceTx(ctx, tx, p, d, u)
	})
	if err != nil {
		return api.Device{}, err
	}
	if dev.OrganizationID != from {
		s.log.Info("device moved", "device_id", id, "from", from, "to", dev.OrganizationID)
	}
	return s.apiDevice(dev), nil
}

// updateDeviceTx applies u to d inside tx and records what changed in the event log.
func (s *Server) updateDeviceTx(ctx context.Context, tx store.Tx, p Principal, d store.Device, u deviceUpdate) (store.Device, error) {
	nd := d
	moved := u.OrganizationID != nil && *u.OrganizationID != d.OrganizationID
	if moved {
		if p.Kind != KindUser {
			return d, errorf(ErrForbidden, "a device cannot move itself; its owner moves it")
		}
		nd.OrganizationID = *u.OrganizationID
		if _, _, err := memberOf(ctx, tx, nd.OrganizationID, d.OwnerID); err != nil {
			return d, err
		}
	}
	o, err := tx.GetOrganization(ctx, nd.OrganizationID)
	if err != nil {
		return d, notFound(err, "organization not found")
	}
	if u.Hostname != nil {
		nd.Hostname = *u.Hostname
	}
	if u.Endpoints != nil {
		nd.Endpoints = storeEndpoints(u.endpoints)
	}
	if u.SymmetricNAT != nil {
		nd.SymmetricNAT = *u.SymmetricNAT
	}
	p4, p6 := orgPrefixes(o)
	if u.ChildPrefixes != nil {
		nd.ChildPrefixes = *u.ChildPrefixes
	}
	if u.ChildPrefixes != nil || moved {
		if nd.ChildPrefixes, err = parseChildPrefixes(nd.ChildPrefixes, p4, p6); err != nil {
			return d, err
		}
	}
	if u.Hostname != nil || moved {
		if _, taken, err := hostnameHolder(ctx, tx, nd.OrganizationID, nd.Hostname, d.ID); err != nil {
			return d, err
		} else if taken {
			return d, errorf(ErrConflict, "hostname %q is taken in the organization", nd.Hostname)
		}
	}
	if moved {
		taken, err := tx.ListDeviceAddresses(ctx, nd.OrganizationID)
		if err != nil {
			return d, err
		}
		a4, a6, err := allocDeviceAddrs(o, taken, d.ID)
		if err != nil {
			return d, err
		}
		nd.TunnelIPv4, nd.TunnelIPv6 = a4.String(), a6.String()
	}
	if !moved && deviceEqual(d, nd) {
		return d, nil
	}
	now := s.now()
	nd.UpdatedAt, nd.LastSeenAt = now, now
	if err := tx.UpdateDevice(ctx, nd); err != nil {
		return d, conflict(err, "device conflicts with an existing one")
	}
	if !moved {
		return nd, s.deviceEvent(ctx, tx, api.EventDeviceUpdated, nd)
	}
	if err := s.deviceEvent(ctx, tx, api.EventDeviceRemoved, d); err != nil {
		return d, err
	}
	if err := s.deviceEvent(ctx, tx, api.EventDeviceAdded, nd); err != nil {
		return d, err
	}
	// The moved device's own stream follows it: a marker addressed to it makes the stream
	// send the new organization's list (readLog), also when it resumes from before the move.
	return nd, s.appendEvent(ctx, tx, nd.OrganizationID, nd.ID, moveMarker())
}

func deviceEqual(a, b store.Device) bool {
	return a.OrganizationID == b.OrganizationID && a.Hostname == b.Hostname && a.SymmetricNAT == b.SymmetricNAT &&
		slices.Equal(a.Endpoints, b.Endpoints) && slices.Equal(a.ChildPrefixes, b.ChildPrefixes)
}

// deleteDevice deletes a device for its owner, an owner of its organization or itself.
func (s *Server) deleteDevice(ctx context.Context, p Principal, id string) (noContent, error) {
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		d, acc, err := loadDevice(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if !acc.self && !acc.deviceOwner && !acc.orgOwner {
			return errorf(ErrForbidden, "only the device's owner, an owner of the organization or the device itself may delete it")
		}
		return s.deleteDeviceTx(ctx, tx, d, api.ReasonDeviceRemoved)
	})
	if err != nil {
		return noContent{}, err
	}
	s.log.Info("device deleted", "device_id", id, "by_kind", p.Kind)
	return noContent{}, nil
}

// signal relays an opaque message from the calling device to a device of the same
// organization, as a signal event on the receiver's stream.
func (s *Server) signal(ctx context.Context, p Principal, id string, req api.SignalRequest) (noContent, error) {
	if len(req.Payload) == 0 {
		return noContent{}, errorf(ErrBadRequest, "payload is required")
	}
	if len(req.Payload) > api.MaxSignalPayload {
		return noContent{}, errorf(ErrTooLarge, "payload larger than %d bytes", api.MaxSignalPayload)
	}
	if err := s.limitSignal(p.DeviceID, len(req.Payload)); err != nil {
		return noContent{}, err
	}
	return noContent{}, s.store.Tx(ctx, func(tx store.Tx) error {
		self, err := tx.GetDevice(ctx, p.DeviceID)
		if err != nil {
			return authErr(err)
		}
		to, err := inOrg(ctx, tx, id, self.OrganizationID, "device not found")
		if err != nil {
			return err
		}
		return s.appendEvent(ctx, tx, to.OrganizationID, to.ID, api.Event{
			Type:   api.EventSignal,
			Signal: &api.Signal{From: self.ID, To: to.ID, Payload: req.Payload},
		})
	})
}
