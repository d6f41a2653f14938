package coordinator

// The API's routes: for each, who may call it and which domain function serves it. Handlers
// only decode (path IDs, then the JSON body), call one domain function and encode its answer;
// the rules live in the domain functions.

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func (s *Server) routes() *http.ServeMux {
	const ok, created = http.StatusOK, http.StatusCreated
	peers := needs("the peer list needs a user or device token", KindUser, KindDevice)
	register := needs("registering a device needs a registration key or a user token", KindRegKey, KindUser)
	routes := []struct {
		pattern string // "METHOD /path" below api.Prefix
		need    need
		h       handler
	}{
		{"POST /users", adminOnly, withBody(created, s.createUser)},
		{"GET /users", adminOnly, read(s.listUsers)},
		{"GET /users/me", userOnly, read(s.me)},
		{"POST /users/{id}/tokens", adminOnly, call("user id", optionalBody, created, s.createToken)},
		{"DELETE /users/{id}", needs("deleting a user needs the admin token or the user's own token", KindAdmin, KindUser),
			readID("user id", s.deleteUser)},
		{"POST /users/me/tokens", userOnly, withBody(created, s.createMyToken)},
		{"GET /users/me/tokens", userOnly, read(s.listMyTokens)},
		{"DELETE /users/me/tokens/{id}", userOnly, readID("token id", s.revokeMyToken)},

		{"POST /organizations", userOnly, withBody(created, s.createOrg)},
		{"GET /organizations", userOnly, read(s.listOrgs)},
		{"GET /organizations/{id}", userOnly, readID("organization id", s.getOrg)},
		{"DELETE /organizations/{id}", userOnly, readID("organization id", s.deleteOrg)},
		{"GET /organizations/{id}/members", userOnly, readID("organization id", s.listMembers)},
		{"DELETE /organizations/{id}/members/{user_id}", userOnly, s.handleRemoveMember},
		{"PATCH /organizations/{id}/members/{user_id}", userOnly, s.handleSetMemberRole},
		{"GET /organizations/{id}/devices", peers, readID("organization id", s.orgPeerList)},
		{"GET /organizations/{id}/events", userOnly, s.streamHandler("organization id", s.openOrgStream)},
		{"PUT /organizations/{id}/relays", userOnly, call("organization id", requiredBody, ok, s.setOrgRelays)},
		{"GET /organizations/{id}/relays", userOnly, readID("organization id", s.getOrgRelays)},
		{"DELETE /organizations/{id}/relays", userOnly, readID("organization id", s.deleteOrgRelays)},

		{"POST /invitations", userOnly, withBody(created, s.createInvitation)},
		{"GET /invitations", userOnly, read(s.listInvitations)},
		{"GET /invitations/{id}", userOnly, readID("invitation id", s.getInvitation)},
		{"POST /invitations/{id}/accept", userOnly, readID("invitation id", s.acceptInvitation)},
		{"POST /invitations/{id}/decline", userOnly, readID("invitation id", s.declineInvitation)},
		{"DELETE /invitations/{id}", userOnly, readID("invitation id", s.revokeInvitation)},

		{"POST /reg-keys", userOnly, withBody(created, s.createRegKey)},
		{"GET /reg-keys", userOnly, read(s.listRegKeys)},
		{"GET /reg-keys/{id}", userOnly, readID("registration key id", s.getRegKey)},
		{"DELETE /reg-keys/{id}", userOnly, readID("registration key id", s.deleteRegKey)},

		{"POST /devices", register, s.handleRegisterDevice},
		{"GET /devices", userOnly, read(s.listDevices)},
		{"GET /devices/{id}", userOrDevice, readID("device id", s.getDevice)},
		{"PATCH /devices/{id}", userOrDevice, call("device id", requiredBody, ok, s.updateDevice)},
		{"DELETE /devices/{id}", userOrDevice, readID("device id", s.deleteDevice)},
		{"GET /devices/{id}/events", needs("a device's event stream needs its device token", KindDevice),
			s.streamHandler("device id", s.openDeviceStream)},
		{"POST /devices/{id}/signal", needs("signaling needs a device token", KindDevice),
			call("device id", requiredBody, ok, s.signal)},
		{"GET /devices/{id}/relay", needs("relay credentials need the device's own token", KindDevice), s.handleDeviceRelay},
	}
	mux := http.NewServeMux()
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		mux.Handle(method+" "+api.Prefix+path, s.authed(rt.need, rt.h))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", s.metricsHandler())
	if s.web != nil {
		s.web.mount(mux) // the console, sign-in and the device grant, outside api.Prefix
	}
	return mux
}

// body says whether a route reads a JSON body.
type body int

const (
	noBody       body = iota // the body is ignored
	requiredBody             // exactly one JSON value
	optionalBody             // one JSON value or nothing
)

// call adapts a domain function of the path ID (named what in errors; none when what is
// empty) and the JSON body: the ID is checked first, then the body decoded; the function's
// result is written with status.
func call[Req, T any](what string, b body, status int, fn func(context.Context, Principal, string, Req) (T, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, p Principal) error {
		var id string
		if what != "" {
			var err error
			if id, err = pathID(r, "id", what); err != nil {
				return err
			}
		}
		var req Req
		if b != noBody {
			if err := decodeJSON(w, r, &req, b == optionalBody); err != nil {
				return err
			}
		}
		v, err := fn(r.Context(), p, id, req)
		return reply(w, status, v, err)
	}
}

// read adapts a domain function of the caller alone.
func read[T any](fn func(context.Context, Principal) (T, error)) handler {
	return call("", noBody, http.StatusOK, func(ctx context.Context, p Principal, _ string, _ struct{}) (T, error) {
		return fn(ctx, p)
	})
}

// readID adapts a domain function of the path ID; its result is answered with 200 (204 for
// noContent).
func readID[T any](what string, fn func(context.Context, Principal, string) (T, error)) handler {
	return call(what, noBody, http.StatusOK, func(ctx context.Context, p Principal, id string, _ struct{}) (T, error) {
		return fn(ctx, p, id)
	})
}

// withBody adapts a domain function of the JSON body.
func withBody[Req, T any](status int, fn func(context.Context, Principal, Req) (T, error)) handler {
	return call("", requiredBody, status, func(ctx context.Context, p Principal, _ string, req Req) (T, error) {
		return fn(ctx, p, req)
	})
}

// handleRegisterDevice answers 201 for a new device and 200 for a known public key.
func (s *Server) handleRegisterDevice(w http.ResponseWriter, r *http.Request, p Principal) error {
	var req api.RegisterDeviceRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	resp, created, err := s.registerDevice(r.Context(), p, req)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return reply(w, status, resp, err)
}

// memberPath reads the organization and user IDs of /organizations/{id}/members/{user_id}.
func memberPath(r *http.Request) (orgID, userID string, err error) {
	if orgID, err = pathID(r, "id", "organization id"); err != nil {
		return "", "", err
	}
	userID, err = pathID(r, "user_id", "user id")
	return orgID, userID, err
}

func (s *Server) handleRemoveMember(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, uid, err := memberPath(r)
	if err != nil {
		return err
	}
	return reply(w, http.StatusNoContent, noContent{}, s.removeMember(r.Context(), p, id, uid))
}

// handleDeviceRelay answers a device's relay configuration, which no cache may keep: it
// carries credentials.
func (s *Server) handleDeviceRelay(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := pathID(r, "id", "device id")
	if err != nil {
		return err
	}
	rc, err := s.deviceRelay(r.Context(), p, id)
	if err == nil {
		w.Header().Set("Cache-Control", "no-store")
	}
	return reply(w, http.StatusOK, rc, err)
}

// handleReady answers 200 while the store answers, 503 otherwise, saying why.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// A read-only view: a probe must not take SQLite's write lock.
	err := s.store.View(ctx, func(tx store.Tx) error { _, err := tx.LatestRevision(ctx); return err })
	if err != nil {
		s.log.Warn("readiness check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Code: api.CodeUnavailable, Message: readyReason(err)})
		return
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ok"})
}
