package turncred

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
)

var secret = []byte("shared-relay-secret")

const devID = "0b6e6c59-3a51-4c8e-9d3c-5d8c1f0a2b7e"

func TestMintVerify(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	exp := now.Add(12 * time.Hour)
	user, pass := Mint(secret, devID, exp)
	if want := strconv.FormatInt(exp.Unix(), 10) + ":" + devID; user != want {
		t.Fatalf("username %q, want %q", user, want)
	}
	got, err := Verify(secret, user, pass, now)
	if err != nil || got != devID {
		t.Fatalf("Verify = %q, %v", got, err)
	}
	// Valid through its expiry second, expired after it.
	if _, err := Verify(secret, user, pass, exp); err != nil {
		t.Errorf("at expiry: %v", err)
	}
	if _, err := Verify(secret, user, pass, exp.Add(time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("after expiry: %v, want ErrExpired", err)
	}
	if _, err := Verify([]byte("other secret"), user, pass, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("other secret: %v, want ErrInvalid", err)
	}
	forged := []byte(pass)
	forged[0] ^= 1
	if _, err := Verify(secret, user, string(forged), now); !errors.Is(err, ErrInvalid) {
		t.Errorf("forged password: %v, want ErrInvalid", err)
	}
	// Extending the expiry of a minted credential invalidates it.
	later := strconv.FormatInt(exp.Add(time.Hour).Unix(), 10) + ":" + devID
	if _, err := Verify(secret, later, pass, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("extended expiry: %v, want ErrInvalid", err)
	}
	// Another device's name with this password.
	other := strconv.FormatInt(exp.Unix(), 10) + ":someone-else"
	if _, err := Verify(secret, other, pass, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("other device: %v, want ErrInvalid", err)
	}
}

// TestKnownVector pins the scheme to a value computed independently
// (printf '1700000000:dev' | openssl dgst -sha1 -hmac secret -binary | base64).
func TestKnownVector(t *testing.T) {
	if got := Password([]byte("secret"), "1700000000:dev"); got != "XmI+qxgIGXGp2UISH7mSOlXDeWs=" {
		t.Errorf("Password = %q", got)
	}
}

// TestPionCompatible checks that a TURN server using pion's own TURN REST handler derives the
// same long-term key from our credentials, as coturn would.
func TestPionCompatible(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	user, pass := Mint(secret, devID, exp)
	h := turn.LongTermTURNRESTAuthHandler(string(secret), logging.NewDefaultLoggerFactory().NewLogger("test"))
	id, key, ok := h(&turn.RequestAttributes{Username: user, Realm: "nexodus"})
	if !ok || id != devID {
		t.Fatalf("pion handler: %q %v", id, ok)
	}
	if want := turn.GenerateAuthKey(user, "nexodus", pass); !bytes.Equal(key, want) {
		t.Errorf("pion derives key %x, ours %x", key, want)
	}
}

func TestParse(t *testing.T) {
	good := map[string]string{
		"1:a":                     "a",
		"1700000000:" + devID:     devID,
		"9223372036854775807:x-y": "x-y",
	}
	for in, want := range good {
		_, id, err := Parse(in)
		if err != nil || id != want {
			t.Errorf("Parse(%q) = %q, %v", in, id, err)
		}
	}
	bad := []string{
		"", ":", "1:", ":dev", "dev", "-1:dev", "+1:dev", "01:dev", " 1:dev", "1 :dev",
		"1:de v", "1:dev:x", "1:dev\n", "1:d\xffv", "9223372036854775808:dev", "1e9:dev",
		"1:" + strings.Repeat("a", MaxDeviceIDLength+1),
	}
	for _, in := range bad {
		if _, _, err := Parse(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", in, err)
		}
	}
	exp, _, err := Parse("1700000000:dev")
	if err != nil || !exp.Equal(time.Unix(1700000000, 0)) || exp.Location() != time.UTC {
		t.Errorf("expiry %v, %v", exp, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1700000000:" + devID, "", ":", "1:", "01:x", "-5:x", "1:a:b", "99999999999999999999:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, username string) {
		exp, id, err := Parse(username)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrMalformed", username, err)
			}
			if id != "" || !exp.IsZero() {
				t.Fatalf("Parse(%q) returned values with an error", username)
			}
			if _, verr := Verify(secret, username, "x", time.Unix(0, 0)); !errors.Is(verr, ErrMalformed) {
				t.Fatalf("Verify(%q) = %v, want ErrMalformed", username, verr)
			}
			return
		}
		// A parsed username round-trips through Mint, and its own credential verifies.
		u, p := Mint(secret, id, exp)
		if u != username {
			t.Fatalf("Parse(%q) then Mint gives %q", username, u)
		}
		if got, err := Verify(secret, u, p, exp); err != nil || got != id {
			t.Fatalf("Verify(Mint(Parse(%q))) = %q, %v", username, got, err)
		}
		if len(id) == 0 || len(id) > MaxDeviceIDLength || strings.ContainsAny(id, ": ") {
			t.Fatalf("Parse(%q) accepted device id %q", username, id)
		}
	})
}
