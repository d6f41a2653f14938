// Package coordinator is the reference Nexodus coordinator: users, organizations, invitations,
// registration keys, devices with their tunnel addresses, signaling and event streams, served
// as the HTTP API described in package api over a [store.Store].
//
// # Authorization model
//
// Every route first checks the kind of credential (admin token, user token, registration key,
// device token); a credential of the wrong kind gets 403 forbidden before any resource is looked
// up, so that answer reveals nothing. Then the resource is looked up from the caller's point of
// view: a resource in an organization the caller cannot see (a user who is not a member, a
// device token of another organization) answers 404 not_found, exactly as if it did not exist,
// so organizations never learn about each other. A caller who can see the resource but lacks the
// role (a member attempting an owner's action, a device acting on a peer device, an owner
// accepting an invitation meant for someone else) gets 403 forbidden.
//
// The admin token is a bootstrap credential for user management only (create and list users,
// issue user tokens); it cannot read or change organizations or devices.
//
// # Sign-up without an admin
//
// With [Config.Console], people sign up and sign in on the coordinator's web console through
// OpenID providers (authorization code with PKCE, oidc.go): the first sign-in creates the user,
// identified by (issuer, subject), and their personal organization. The browser holds a
// session cookie (sessions.go) and every form a CSRF token (csrf.go); sessions, sign-ins in
// progress and device logins live in the store, so any replica serves any step. Signed-in
// users manage their own API tokens, and a CLI signs in with the OAuth 2.0 device
// authorization grant (RFC 8628, deviceauth.go) approved in the console.
//
// # Responses
//
// Creating answers 201 with the new resource (POST /users, /users/{id}/tokens, /organizations,
// /invitations, /reg-keys, and /devices for a new device; re-registering a known public key
// answers 200 with the same device and addresses and a fresh sealed token, see Decisions).
// Reads, PATCH and PUT /organizations/{id}/relays (create or replace) answer 200 with the
// resource; accept and decline answer 200 with the invitation in its new state. DELETE routes
// (including revoking an invitation) and POST /devices/{id}/signal answer 204 without a body.
// Acting on an invitation that is not pending answers 410 gone.
//
// Role rules: the organization's creator (OwnerID) cannot be removed or leave; members with the
// owner role (the creator, or users who accepted an owner invitation) may delete the
// organization, invite, revoke, manage registration keys and the organization's relays, remove
// other members and delete any device of the organization. A personal organization cannot be deleted (403).
//
// # Decisions
//
//   - Re-registration needs proof of possession. Anyone who may register into an organization
//     (its registration key, any member) can name any of its devices' public keys, which peer
//     lists show. So re-registering a known key applies nothing unless the caller is the
//     device's owner with their user token: the answer carries the device as it is and a new
//     token sealed to its public key (api.RegisterDeviceResponse.Pending). That token is
//     pending: the current one keeps working until the pending one is first used, which only
//     the private-key holder can do; then it becomes the device's token and the old one
//     stops working. The node sets its hostname and endpoints with PATCH. A second
//     re-registration replaces an unused pending token. The owner's own re-registration
//     applies the request and replaces the token at once.
//   - A registration key acts for the owner who made it: it stops working while that user is
//     not a member of the key's organization.
//   - Only personal organizations' names are unique (they are usernames). Another
//     organization may not take a username as its name but may share a name with any other
//     organization, so names reveal nothing about other organizations and nobody can keep a
//     future user from being created.
//   - A request whose client disconnects before the answer is not a server failure: it is
//     logged at debug level with status 499, never as a 5xx.
//   - While the database is unavailable (down, restarting, refusing connections:
//     store.ErrUnavailable) requests answer 503 unavailable and GET /readyz answers 503 saying
//     why; the store reconnects by itself, and requests work again once the database is back.
//     Event streams end with the outage; clients reconnect and resume from their last event.
//   - GET /metrics serves Prometheus metrics on a registry of the Server's own (requests by
//     route and code, request latency, open streams, events fanned out and their latency from
//     append to write, devices online here, store transaction latency, Go and process
//     figures); with [Config.MetricsToken] set, only to that bearer token.
//   - Hostnames are unique (case-insensitively) within an organization, so peers can dial each
//     other by hostname; a clash answers 409 conflict.
//   - Removing a member (or a member leaving) deletes the devices that user owns in that
//     organization, each with a device.removed event. Registration keys the user created stay
//     but do not work while the user is not a member (see above).
//   - Deleting an organization deletes its devices, keys, invitations and event log; open event
//     streams of the organization and its devices end.
//   - Organization IPv4 blocks: an organization created without a CIDR gets the /16 (see
//     [Config.OrgPrefixLen]) of the pool used by the fewest organizations, lowest first, so the
//     first 64 organizations of the default pool get distinct blocks and later ones share blocks
//     (organizations are separate address spaces, so overlap between them is harmless).
//   - "Online": a device is online while its event stream is connected. Each process counts
//     its own streams in memory (the Online field of devices it serves), and records each in
//     the store as a presence row it renews at every heartbeat and removes when the stream
//     ends; a row not renewed for three heartbeats expires (a replica that died). "Offline",
//     for the hostname rule, is no stream here and no unexpired presence row anywhere.
//     Ephemeral devices are deleted after their stream has been gone for
//     [Config.EphemeralGrace] (also when they never connect, counted from registration or from
//     coordinator start). What "gone" means is in the store, shared by replicas: no unexpired
//     presence row of any replica, and a LastSeenAt (set at registration, renewed now and then
//     by the device's stream and at its end) older than the grace period. One replica at a
//     time sweeps them, under the store's "prune" lock; a replica younger than the grace
//     period sweeps none. Other devices are never deleted for being offline. Going online or
//     offline appends no event; GET and sync events show it.
//   - Event streams: a fresh stream starts with a sync event (the full device list, with the
//     current revision as its ID); Last-Event-ID resumes after that revision, or starts with a
//     sync when the log no longer reaches back that far. The sweeper bounds each
//     organization's log by age (Config.EventRetention) and by size (Config.EventLogMaxBytes
//     of event data, oldest events first); the store keeps one pruned revision for all
//     organizations, so a stream resuming from below it gets a sync even when its own
//     organization lost nothing. A moved device's stream follows it: the
//     move appends a small marker addressed to the device in the new organization's log, and the
//     stream, reading it, sends a sync of that organization. Syncs and the peer-list GET are
//     serialized once per organization and revision and shared (a bounded cache); after its
//     sync a stream sends deltas. A stream ends
//     when its device is deleted (after delivering its own device.removed), when the device
//     token it was opened with is replaced, or when its user stops being a member; access is
//     re-checked on every wake-up and every heartbeat. An http.Server's ReadTimeout does not
//     end streams (net/http lifts the read deadline once a bodyless request is read), so
//     serve the coordinator with ReadHeaderTimeout, ReadTimeout and IdleTimeout set, but no
//     WriteTimeout: streams bound each write themselves (Config.StreamWriteTimeout).
//   - GET /devices/{id}/relay answers the device itself (its own token; a user token or another
//     device's gets 403, a device of another organization 404) with its organization's own
//     relays (PUT /organizations/{id}/relays, owner only; GET for members shows the servers,
//     never the secret) or else Config.STUNServers and Config.TURNServers, and TURN REST
//     credentials minted from the organization's secret or Config.RelaySecret, valid for
//     Config.RelayCredentialTTL. The same is pushed on the device's event stream as a relay
//     event: after connecting, at half the credentials' lifetime, and when the organization's
//     relays change. Relay events are not logged (no revision, never replayed: the log is no
//     place for credentials). A deleted device's token stops working, so it gets no more
//     credentials. Organization relay secrets are sealed with Config.SealKey when it is set;
//     each sealed secret names its key by a short ID, so a coordinator started with another
//     key (or none) reports which key sealed it (ErrSealed, logged at start; the relay request
//     gets 500) and leaves the row for the right key. At start with a key, secrets stored
//     unsealed are sealed and the store compacted (Store.Compact: SQLite rebuilds the file and
//     truncates the WAL, so no file keeps the plaintext; on PostgreSQL, scrubbing old row
//     versions and WAL is the database operator's business). A failed compaction is retried
//     at every sweep.
//   - Rate limits ([Config.RateLimits], token buckets of golang.org/x/time/rate): every
//     authenticated request costs its user, device or registration key (the admin token is
//     not limited); signals cost the sending device by count and by payload bytes; updates
//     cost the updated device (charged only once the caller may update it, so nobody spends
//     another's budget), and a move costs it a move too. Requests without a valid credential
//     (failed authentications, requests to no route) cost their source address: an IPv4
//     address or an IPv6 /64, the TCP peer unless it is one of [Config.TrustedProxies], in
//     which case the right-most untrusted address of X-Forwarded-For (never trusted by
//     default). An address whose budget is spent gets 429 for every request, before its
//     credential is checked. /healthz and /readyz are never limited. Over a limit the answer
//     is 429 rate_limited with Retry-After (whole seconds until the request would pass).
//     Buckets live in the process: with several replicas behind a load balancer each one
//     counts its own, so a client may get up to replicas × the limit. Memory is bounded: a
//     refilled bucket is dropped, and beyond RateLimits.MaxKeys buckets new keys share one.
//   - Advertised child prefixes must be canonical and must not overlap the organization's own
//     IPv4 CIDR or IPv6 prefix; overlaps between devices' child prefixes are not checked.
package coordinator
