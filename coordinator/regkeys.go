package coordinator

import (
	"context"
	"net/http"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func (s *Server) handleCreateRegKey(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	var req api.CreateRegKeyRequest
	if err := decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	if err := checkID("organization_id", req.OrganizationID); err != nil {
		return err
	}
	if err := validDescription(req.Description); err != nil {
		return err
	}
	ttl, err := parseExpiresIn(req.ExpiresInSeconds, 0)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var out api.RegKey
	err = s.store.Tx(ctx, func(tx store.Tx) error {
		if _, _, err := ownerOf(ctx, tx, req.OrganizationID, p.UserID); err != nil {
			return err
		}
		now := s.now()
		secret := newSecret()
		k := store.RegKey{
			ID: newID(), OrganizationID: req.OrganizationID, OwnerID: p.UserID, Description: req.Description,
			SecretHash: hashSecret(secret), SingleUse: req.SingleUse, Ephemeral: req.Ephemeral, CreatedAt: now,
		}
		if ttl > 0 {
			exp := now.Add(ttl)
			k.ExpiresAt = &exp
		}
		if err := tx.CreateRegKey(ctx, k); err != nil {
			return err
		}
		out = apiRegKey(k)
		out.Secret = formatToken(api.RegKeyPrefix, k.ID, secret)
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("registration key created", "reg_key_id", out.ID, "org_id", out.OrganizationID, "by", p.UserID)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) handleListRegKeys(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	ctx := r.Context()
	var out []api.RegKey
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		orgs, err := tx.ListOrganizationsForUser(ctx, p.UserID)
		if err != nil {
			return err
		}
		out = []api.RegKey{}
		for _, o := range orgs {
			m, err := tx.GetMember(ctx, o.ID, p.UserID)
			if err != nil || m.Role != api.RoleOwner {
				continue
			}
			ks, err := tx.ListRegKeys(ctx, o.ID)
			if err != nil {
				return err
			}
			for _, k := range ks {
				out = append(out, apiRegKey(k))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// loadRegKey loads a key for an owner of its organization; members get 403, others 404.
func loadRegKey(ctx context.Context, tx store.Tx, id, userID string) (store.RegKey, error) {
	k, err := tx.GetRegKey(ctx, id)
	if err != nil {
		return k, notFound(err, "registration key not found")
	}
	if _, _, err := ownerOf(ctx, tx, k.OrganizationID, userID); err != nil {
		return k, notFound(err, "registration key not found")
	}
	return k, nil
}

func (s *Server) handleGetRegKey(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "registration key id")
	if err != nil {
		return err
	}
	var k store.RegKey
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		k, err = loadRegKey(r.Context(), tx, id, p.UserID)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiRegKey(k))
	return nil
}

func (s *Server) handleDeleteRegKey(w http.ResponseWriter, r *http.Request, p Principal) error {
	if err := p.requireUser(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "registration key id")
	if err != nil {
		return err
	}
	err = s.store.Tx(r.Context(), func(tx store.Tx) error {
		if _, err := loadRegKey(r.Context(), tx, id, p.UserID); err != nil {
			return err
		}
		return notFound(tx.DeleteRegKey(r.Context(), id), "registration key not found")
	})
	if err != nil {
		return err
	}
	s.log.Info("registration key deleted", "reg_key_id", id, "by", p.UserID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
