// hostnames.go holds the rule for a registration whose hostname another device of the
// organization already has.

package coordinator

import (
	"context"
	"slices"
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
//
// It returns the name and the devices left in the organization.
func (s *Server) claimHostname(ctx context.Context, tx store.Tx, devices []store.Device, name string, who registrant) (string, []store.Device, error) {
	i := slices.IndexFunc(devices, func(d store.Device) bool { return strings.EqualFold(d.Hostname, name) })
	if i < 0 {
		return name, devices, nil
	}
	holder := devices[i]
	sameKey := holder.RegKeyID != "" && holder.RegKeyID == who.regKeyID
	sameEphemeralUser := holder.Ephemeral && holder.OwnerID == who.ownerID
	if !sameKey && !sameEphemeralUser {
		return freeHostname(devices, name), devices, nil
	}
	online, err := s.onlineAnywhere(ctx, tx, holder)
	if err != nil {
		return "", nil, err
	}
	if !online {
		if err := s.deleteDeviceTx(ctx, tx, holder, api.ReasonDeviceRemoved); err != nil {
			return "", nil, err
		}
		s.log.Info("offline device replaced by a new registration of its hostname", "device_id", holder.ID, "hostname", holder.Hostname)
		return name, slices.Delete(slices.Clone(devices), i, i+1), nil
	}
	return freeHostname(devices, name), devices, nil
}

// freeHostname returns the first "name-N" no device has, shortening name to keep it a DNS label.
func freeHostname(devices []store.Device, name string) string {
	for n := 1; ; n++ {
		suffix := "-" + strconv.Itoa(n)
		base := name[:min(len(name), api.MaxHostnameLength-len(suffix))]
		cand := strings.TrimRight(base, "-") + suffix
		if !hostnameTaken(devices, cand, "") {
			return cand
		}
	}
}
