package mesh

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/key"
)

// This file speaks wireguard-go's configuration protocol (UAPI, "key=value" lines; see
// https://www.wireguard.com/xplatform/#configuration-protocol).

func keepaliveSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

func writePeerRemove(w *strings.Builder, pub key.Key) {
	fmt.Fprintf(w, "public_key=%s\nremove=true\n", pub.Hex())
}

// writePeerAdd configures a new peer. Its endpoint is its own public key: the Bind's key
// endpoint (see bind.ParseEndpoint).
func writePeerAdd(w *strings.Builder, p Peer) {
	k := p.PublicKey.Hex()
	fmt.Fprintf(w, "public_key=%s\nendpoint=%s\npersistent_keepalive_interval=%d\nreplace_allowed_ips=true\n",
		k, k, keepaliveSeconds(p.Keepalive))
	for _, pr := range p.AllowedIPs {
		fmt.Fprintf(w, "allowed_ip=%s\n", pr)
	}
}

// writePeerUpdate writes what changed between old and p (both normalized) that wireguard-go
// needs to know. Endpoints are the Bind's business and never reach wireguard-go.
func writePeerUpdate(w *strings.Builder, old, p Peer) {
	ipsChanged := !slices.Equal(old.AllowedIPs, p.AllowedIPs)
	kaChanged := keepaliveSeconds(old.Keepalive) != keepaliveSeconds(p.Keepalive)
	if !ipsChanged && !kaChanged {
		return
	}
	fmt.Fprintf(w, "public_key=%s\nupdate_only=true\n", p.PublicKey.Hex())
	if kaChanged {
		fmt.Fprintf(w, "persistent_keepalive_interval=%d\n", keepaliveSeconds(p.Keepalive))
	}
	if ipsChanged {
		w.WriteString("replace_allowed_ips=true\n")
		for _, pr := range p.AllowedIPs {
			fmt.Fprintf(w, "allowed_ip=%s\n", pr)
		}
	}
}

type deviceCounters struct {
	lastHandshake time.Time
	rx, tx        uint64
}

// parseDeviceCounters extracts per-peer counters from an IpcGet dump.
func parseDeviceCounters(s string) map[key.Key]deviceCounters {
	out := make(map[key.Key]deviceCounters)
	var (
		cur   key.Key
		have  bool
		c     deviceCounters
		hsSec int64
		hsNs  int64
	)
	flush := func() {
		if have {
			if hsSec != 0 || hsNs != 0 {
				c.lastHandshake = time.Unix(hsSec, hsNs)
			}
			out[cur] = c
		}
		c, hsSec, hsNs = deviceCounters{}, 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "public_key":
			flush()
			var err error
			cur, err = key.ParseHex(v)
			have = err == nil
		case "rx_bytes":
			c.rx, _ = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			c.tx, _ = strconv.ParseUint(v, 10, 64)
		case "last_handshake_time_sec":
			hsSec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			hsNs, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	flush()
	return out
}
