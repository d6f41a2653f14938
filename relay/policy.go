// policy.go holds who may use the relay and how much: credential checks and the limit on
// failed ones per source address, the peers an allocation may reach, and the per-device
// allocation quota.

package relay

import (
	"net"
	"net/netip"

	"github.com/pion/turn/v5"

	"github.com/nexodus-sdk/nexodus/internal/turncred"
)

// authenticate is pion's AuthHandler: it returns the device ID as the allocation's user ID and
// the long-term key of the username's password, which pion checks the message integrity with.
func (s *Server) authenticate(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	src := ""
	if ra.SrcAddr != nil {
		src = ra.SrcAddr.String()
	}
	now := s.cfg.Now()
	if s.authLimit.Wait(sourceKey(ra.SrcAddr), 1, now) > 0 {
		s.authThrottled.Add(1)
		s.log.Debug("turn request refused: too many failed authentications from its address", "src", src)
		return "", nil, false
	}
	if ra.Realm != s.cfg.Realm {
		s.authFailed(ra.SrcAddr)
		s.log.Debug("turn request refused: wrong realm", "src", src, "realm", ra.Realm)
		return "", nil, false
	}
	deviceID, password, err := turncred.Check(s.cfg.Secret, ra.Username, now)
	if err != nil {
		s.authFailed(ra.SrcAddr)
		s.log.Debug("turn request refused", "src", src, "username", ra.Username, "err", err)
		return "", nil, false
	}
	return deviceID, turn.GenerateAuthKey(ra.Username, ra.Realm, password), true
}

// authFailed counts a failed authentication and charges it to its source address.
func (s *Server) authFailed(src net.Addr) {
	s.authFails.Add(1)
	s.authLimit.Take(sourceKey(src), 1, s.cfg.Now())
}

// sourceKey is the bucket of a source address: the address for IPv4, its /64 for IPv6 (one
// subscriber's usual allocation), the zero Prefix for anything else.
func sourceKey(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.AddrPort().Addr()
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	}
	ip = ip.WithZone("").Unmap()
	switch {
	case !ip.IsValid():
		return netip.Prefix{}
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	default:
		p, _ := ip.Prefix(64)
		return p
	}
}

// permit is pion's PermissionHandler: it decides which peers an allocation may exchange
// datagrams with (CreatePermission and ChannelBind).
func (s *Server) permit(client net.Addr, peerIP net.IP) bool {
	ip, ok := netip.AddrFromSlice(peerIP)
	ip = ip.Unmap()
	allowed := ok && (ip == s.cfg.PublicIP || !(ip.IsUnspecified() || ip.IsMulticast() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsLoopback() && !s.cfg.PublicIP.IsLoopback()))
	for _, p := range s.cfg.DeniedPeers {
		if allowed && ip != s.cfg.PublicIP && p.Contains(ip) {
			allowed = false
		}
	}
	if !allowed {
		s.peersRef.Add(1)
		s.log.Info("permission refused: denied peer address", "src", client.String(), "peer", peerIP.String())
	}
	return allowed
}

// quotaAllows is pion's QuotaHandler, called with the user ID authenticate returned. The count
// is only reserved when the relay socket is opened (see reserve), so this is the early check
// that answers 486.
func (s *Server) quotaAllows(userID, _ string, src net.Addr) bool {
	if s.cfg.QuotaPerUser == 0 {
		return true
	}
	s.mu.Lock()
	n := s.perUser[userID]
	s.mu.Unlock()
	if n >= s.cfg.QuotaPerUser {
		s.quotaRej.Add(1)
		s.log.Info("allocation refused: quota reached", "device_id", userID, "src", src.String(), "quota", s.cfg.QuotaPerUser)
		return false
	}
	return true
}

// reserve counts a new allocation of userID, refusing it over the quota or after Close.
func (s *Server) reserve(userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return net.ErrClosed
	}
	if s.cfg.QuotaPerUser > 0 && s.perUser[userID] >= s.cfg.QuotaPerUser {
		s.quotaRej.Add(1)
		return ErrQuotaExceeded
	}
	s.perUser[userID]++
	s.relays.Add(1)
	return nil
}

func (s *Server) release(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUser[userID]--; s.perUser[userID] <= 0 {
		delete(s.perUser, userID)
	}
	if s.relays.Add(-1) == 0 && s.closed.Load() {
		s.settle()
	}
}
