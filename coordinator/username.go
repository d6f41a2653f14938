package coordinator

// The one rule that names a user who signs up through an OpenID provider.

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

// usernameBase derives the username a person signing up would like, from what their provider
// says about them. It is the only place this is decided:
//
//  1. Take the preferred_username claim; if it is empty, the email address; if both are
//     empty, "user". Of an address (either claim may be one), keep the part before the last '@'.
//  2. Lowercase it. Keep ASCII letters, digits, '.', '_' and '-'; every other character
//     (spaces, '+', accented letters, ...) becomes '-', and runs of '-' become one.
//  3. Drop leading characters that are not a letter or digit, cut it to 58 characters (room
//     for a numeric suffix within api.MaxNameLength), and drop trailing '.', '_' and '-'.
//  4. If nothing is left, "user".
//
// [Server.freeUsername] then appends 2, 3, ... while the name is taken.
func usernameBase(preferredUsername, email string) string {
	s := strings.TrimSpace(preferredUsername)
	if s == "" {
		s = strings.TrimSpace(email)
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[:i]
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_':
			b.WriteRune(r)
			dash = false
		default: // '-' and everything not allowed
			if !dash {
				b.WriteByte('-')
			}
			dash = true
		}
	}
	out := strings.TrimLeftFunc(b.String(), func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') })
	if len(out) > maxUsernameBase {
		out = out[:maxUsernameBase]
	}
	out = strings.TrimRight(out, ".-_")
	if out == "" {
		return "user"
	}
	return out
}

// maxUsernameBase leaves room for a suffix of up to six digits.
const maxUsernameBase = api.MaxNameLength - 6

// freeUsername returns base, or base followed by the lowest number from 2 on that makes it a
// username nobody has, inside tx.
func (s *Server) freeUsername(ctx context.Context, tx store.Tx, base string) (string, error) {
	for n := 1; n < 100000; n++ {
		name := base
		if n > 1 {
			name = base + strconv.Itoa(n)
		}
		_, err := tx.GetUserByUsername(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return name, nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", errorf(ErrConflict, "no free username like %q", base)
}
