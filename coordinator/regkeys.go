package coordinator

// Registration keys: organization-scoped, single-use or reusable, optionally expiring or
// making ephemeral devices; made and managed by the organization's owners, the secret shown
// once and stored hashed.

import (
	"context"

	"github.com/nexodus-sdk/nexodus/api"
	"github.com/nexodus-sdk/nexodus/coordinator/store"
)

func (s *Server) createRegKey(ctx context.Context, p Principal, req api.CreateRegKeyRequest) (api.RegKey, error) {
	if err := checkID("organization_id", req.OrganizationID); err != nil {
		return api.RegKey{}, err
	}
	ttl, err := parseCredential(req.Description, req.ExpiresInSeconds)
	if err != nil {
		return api.RegKey{}, err
	}
	out, err := inTx(ctx, s.store, func(tx store.Tx) (api.RegKey, error) {
		if _, _, err := ownerOf(ctx, tx, req.OrganizationID, p.UserID); err != nil {
			return api.RegKey{}, err
		}
		now, secret := s.now(), newSecret()
		k := store.RegKey{
			ID: newID(), OrganizationID: req.OrganizationID, OwnerID: p.UserID, Description: req.Description,
			SecretHash: hashSecret(secret), SingleUse: req.SingleUse, Ephemeral: req.Ephemeral,
			ExpiresAt: expiry(now, ttl), CreatedAt: now,
		}
		out := apiRegKey(k)
		out.Secret = formatToken(api.RegKeyPrefix, k.ID, secret)
		return out, tx.CreateRegKey(ctx, k)
	})
	if err != nil {
		return api.RegKey{}, err
	}
	s.log.Info("registration key created", "reg_key_id", out.ID, "org_id", out.OrganizationID, "by", p.UserID)
	return out, nil
}

// listRegKeys lists the keys of the organizations the caller owns.
func (s *Server) listRegKeys(ctx context.Context, p Principal) ([]api.RegKey, error) {
	return inTx(ctx, s.store, func(tx store.Tx) ([]api.RegKey, error) {
		orgs, err := ownedOrgs(ctx, tx, p.UserID)
		if err != nil {
			return nil, err
		}
		return perOrg(ctx, orgs, tx.ListRegKeys, apiRegKey)
	})
}

func (s *Server) getRegKey(ctx context.Context, p Principal, id string) (api.RegKey, error) {
	return inTx(ctx, s.store, func(tx store.Tx) (api.RegKey, error) {
		k, err := loadRegKey(ctx, tx, id, p.UserID)
		return apiRegKey(k), err
	})
}

func (s *Server) deleteRegKey(ctx context.Context, p Principal, id string) (noContent, error) {
	err := s.store.Tx(ctx, func(tx store.Tx) error {
		if _, err := loadRegKey(ctx, tx, id, p.UserID); err != nil {
			return err
		}
		return notFound(tx.DeleteRegKey(ctx, id), "registration key not found")
	})
	if err != nil {
		return noContent{}, err
	}
	s.log.Info("registration key deleted", "reg_key_id", id, "by", p.UserID)
	return noContent{}, nil
}
