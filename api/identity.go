package api

// Wire types of self-service accounts: a user's own API tokens, deleting users, members'
// roles, and the OAuth 2.0 device authorization grant (RFC 8628) through which a CLI signs in.
//
// Routes below [Prefix] (JSON, bearer tokens as everywhere):
//
//	POST   /users/me/tokens                user: create an API token of the caller's own
//	GET    /users/me/tokens                user: the caller's own tokens (never their secrets)
//	DELETE /users/me/tokens/{id}           user: revoke one of them; it stops working at once
//	DELETE /users/{id}                     admin, or the user themself: delete the user
//	PATCH  /organizations/{id}/members/{user_id}  owner: change a member's role
//
// The device authorization grant is served outside the prefix, form-encoded as RFC 8628 and
// RFC 6749 want, without credentials:
//
//	POST /oauth/device/code   client_id=nexctl            -> DeviceAuthorizationResponse
//	POST /oauth/token         grant_type=DeviceCodeGrantType&device_code=...&client_id=nexctl
//	                          -> OAuthTokenResponse, or 400 with an OAuthError
//
// The person approves the code on the coordinator's web console at VerificationURI, signing in
// with an OpenID provider if needed; the access token is a user API token ([UserTokenPrefix]).

// Paths of the device authorization grant, outside [Prefix].
const (
	DeviceAuthorizationPath = "/oauth/device/code"
	TokenPath               = "/oauth/token"
	// DeviceVerificationPath is the console page where a person enters or confirms a user code.
	DeviceVerificationPath = "/device"
)

// DeviceCodeGrantType is the grant_type of a device access token request (RFC 8628 §3.4).
const DeviceCodeGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// OAuth error codes of the token endpoint (RFC 6749 §5.2, RFC 8628 §3.5).
const (
	OAuthAuthorizationPending = "authorization_pending" // keep polling
	OAuthSlowDown             = "slow_down"             // keep polling, 5 s more between polls
	OAuthAccessDenied         = "access_denied"         // the person denied the request
	OAuthExpiredToken         = "expired_token"         // the device code expired: start again
	OAuthInvalidGrant         = "invalid_grant"         // unknown or already used device code
	OAuthInvalidRequest       = "invalid_request"       // a parameter is missing or malformed
	OAuthInvalidClient        = "invalid_client"        // client_id missing or not the one the code was issued to
	OAuthUnsupportedGrantType = "unsupported_grant_type"
)

// DeviceAuthorizationResponse answers POST /oauth/device/code (RFC 8628 §3.2). The client
// shows UserCode and VerificationURI (or VerificationURIComplete, which carries the code) and
// polls the token endpoint with DeviceCode every Interval seconds until ExpiresIn seconds
// have passed.
type DeviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval,omitempty"`
}

// OAuthTokenResponse answers a successful POST /oauth/token (RFC 6749 §5.1). AccessToken is a
// user API token; ExpiresIn is its lifetime in seconds.
type OAuthTokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // "Bearer"
	ExpiresIn   int64  `json:"expires_in,omitempty"`
}

// OAuthError is the body of a refused POST /oauth/token or /oauth/device/code (RFC 6749 §5.2).
type OAuthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// SetMemberRoleRequest is the body of PATCH /organizations/{id}/members/{user_id}: Role is
// [RoleOwner] or [RoleMember]. The organization's creator stays an owner.
type SetMemberRoleRequest struct {
	Role string `json:"role"`
}
