// hostnames.go holds the rule for a registration whose hostname another device of the
// organization already has.

package coordinator

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// claimHostname decides, inside the registering transaction, the hostname a new device gets.
// Hostnames are unique per organization, compared case-insensitively. When another device
// holds the name:
//
//   - it is replaced (deleted, with a device.removed event) if it is offline — no event stream
//     open on this coordinator, and no presence row of any replica sharing the store renewed
//     within the last three heartbeats (presence.go) — and was registered with the same registration key as the
//     newcomer, or is an ephemeral device of the same user: the same program came back after a
//     crash or without its state dir, and must not be locked out of its own name;
//   - otherwise it keeps the name, and the newcomer gets the first free "name-N" (N = 1, 2, …),
//     which its Status reports.
func (s *Server) claimHostname(ctx context.Context, tx store.Tx, orgID, name string, who registrant) (string, error) {
	holder, taken, err := hostnameHolder(ctx, tx, orgID, name, "")
	if err != nil || !taken {
		return name, err
	}
	sameKey := holder.RegKeyID != "" && holder.RegKeyID == who.regKeyID
	sameEphemeralUser := holder.Ephemeral && holder.OwnerID == who.ownerID
	if !sameKey && !sameEphemeralUser {
		return freeHostnameIn(ctx, tx, orgID, name)
	}
	online, err := s.onlineAnywhere(ctx, tx, holder)
	if err != nil {
		return "", err
	}
	if !online {
		if err := s.deleteDeviceTx(ctx, tx, holder, api.ReasonDeviceRemoved); err != nil {
			return "", err
		}
		s.log.Info("offline device replaced by a new registration of its hostname", "device_id", holder.ID, "hostname", holder.Hostname)
		return name, nil
	}
	return freeHostnameIn(ctx, tx, orgID, name)
}

// hostnameHolder finds the organization's device, other than except, that has name (ignoring
// case) by the store's hostname index: taken is false when there is none.
func hostnameHolder(ctx context.Context, tx store.Tx, orgID, name, except string) (holder store.Device, taken bool, err error) {
	d, err := tx.GetDeviceByHostname(ctx, orgID, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Device{}, false, nil
	case err != nil:
		return store.Device{}, false, err
	case d.ID == except:
		return store.Device{}, false, nil
	}
	return d, true, nil
}

// freeHostnameIn returns the first "name-N" no device of the organization has.
func freeHostnameIn(ctx context.Context, tx store.Tx, orgID, name string) (string, error) {
	return firstFreeHostname(name, func(cand string) (bool, error) {
		_, taken, err := hostnameHolder(ctx, tx, orgID, cand, "")
		return taken, err
	})
}

// freeHostname returns the first "name-N" none of devices has.
func freeHostname(devices []store.Device, name string) string {
	cand, _ := firstFreeHostname(name, func(cand string) (bool, error) { return hostnameTaken(devices, cand, ""), nil })
	return cand
}

// firstFreeHostname returns the first "name-N" (N = 1, 2, …) that taken says is free,
// shortening name to keep it a DNS label.
func firstFreeHostname(name string, taken func(string) (bool, error)) (string, error) {
	for n := 1; ; n++ {
		suffix := "-" + strconv.Itoa(n)
		base := name[:min(len(name), api.MaxHostnameLength-len(suffix))]
		cand := strings.TrimRight(base, "-") + suffix
		if t, err := taken(cand); err != nil || !t {
			return cand, err
		}
	}
}
