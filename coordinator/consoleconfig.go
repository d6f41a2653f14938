package coordinator

// The configuration of the web console and everything that hangs on it: the OpenID providers
// people sign in with, browser sessions, and the device authorization grant.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ConsoleConfig turns on the web console (server-rendered pages under /console), sign-in with
// OpenID providers (/login), browser sessions and the OAuth 2.0 device authorization grant
// (/oauth/device/code, /oauth/token) through which `nexctl login` and Nodes sign in. A person
// who signs in for the first time gets a user and a personal organization, with no admin step.
type ConsoleConfig struct {
	// ExternalURL is the coordinator's public base URL, such as "https://nexodus.example.com":
	// redirect URIs (ExternalURL + "/auth/callback/" + provider name, to register at each
	// provider) and the device verification URI are built from it. An https URL makes cookies
	// Secure (and __Host- prefixed). Required.
	ExternalURL string
	// Providers are the OpenID providers people may sign in with. At least one.
	Providers []OIDCProvider
	// SessionTTL is how long a browser session lasts from sign-in. Default 12h.
	SessionTTL time.Duration
	// LoginTTL is how long a sign-in at a provider may take. Default 10 minutes.
	LoginTTL time.Duration
	// DeviceCodeTTL is how long a device code waits for approval. Default 10 minutes.
	DeviceCodeTTL time.Duration
	// DevicePollInterval is the interval device clients are told to poll at; polling faster
	// answers slow_down. Default 5s.
	DevicePollInterval time.Duration
	// DeviceTokenTTL is the lifetime of the API token an approved device login gets.
	// Default 30 days.
	DeviceTokenTTL time.Duration
	// HTTPClient talks to the providers (discovery, keys, token exchange, userinfo). Default:
	// a client with a 30 s timeout.
	HTTPClient *http.Client
}

// OIDCProvider is an OpenID provider (Google, GitLab, Keycloak, Dex, ...) people may sign in
// with, registered there as a confidential web client using the authorization-code flow.
type OIDCProvider struct {
	// Name identifies the provider in URLs (/login/NAME, /auth/callback/NAME): lowercase
	// letters, digits and '-'.
	Name string
	// DisplayName is shown on the sign-in button. Default: Name.
	DisplayName string
	// Issuer is the issuer URL; its /.well-known/openid-configuration is read on first use.
	Issuer string
	// ClientID and ClientSecret are the coordinator's credentials at the provider.
	ClientID     string
	ClientSecret string
	// Scopes requested besides "openid". Default: email, profile.
	Scopes []string
	// AllowedDomains, when set, admits only people whose email address the provider has
	// verified (email_verified) and whose domain is one of these ("example.com").
	AllowedDomains []string
	// AllowedEmails, when set, admits people with one of these verified email addresses
	// (besides those of AllowedDomains). With neither set, anybody with an account at the
	// provider may sign up.
	AllowedEmails []string
}

// checkConsole checks Config.Console and fills in its defaults.
func (c *Config) checkConsole() error {
	cc := c.Console
	if cc == nil {
		return nil
	}
	cp := *cc
	cp.Providers = slices.Clone(cc.Providers)
	c.Console = &cp
	cc = &cp
	u, err := url.Parse(cc.ExternalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("coordinator: Console.ExternalURL %q must be an http or https URL without query or fragment", cc.ExternalURL)
	}
	cc.ExternalURL = strings.TrimRight(cc.ExternalURL, "/")
	if len(cc.Providers) == 0 {
		return errors.New("coordinator: Console needs at least one OpenID provider")
	}
	seen := map[string]bool{}
	for i := range cc.Providers {
		p := &cc.Providers[i]
		if !validProviderName(p.Name) {
			return fmt.Errorf("coordinator: OpenID provider name %q: want 1..32 lowercase letters, digits and '-'", p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("coordinator: two OpenID providers are named %q", p.Name)
		}
		seen[p.Name] = true
		if iu, err := url.Parse(p.Issuer); err != nil || (iu.Scheme != "https" && iu.Scheme != "http") || iu.Host == "" {
			return fmt.Errorf("coordinator: OpenID provider %s: issuer %q is not an http(s) URL", p.Name, p.Issuer)
		}
		if p.ClientID == "" {
			return fmt.Errorf("coordinator: OpenID provider %s: client ID is required", p.Name)
		}
		if p.DisplayName == "" {
			p.DisplayName = p.Name
		}
		if p.Scopes == nil {
			p.Scopes = []string{"email", "profile"}
		}
		p.AllowedDomains = lowerAll(p.AllowedDomains)
		p.AllowedEmails = lowerAll(p.AllowedEmails)
	}
	for _, d := range []struct {
		field *time.Duration
		def   time.Duration
	}{
		{&cc.SessionTTL, 12 * time.Hour},
		{&cc.LoginTTL, 10 * time.Minute},
		{&cc.DeviceCodeTTL, 10 * time.Minute},
		{&cc.DevicePollInterval, 5 * time.Second},
		{&cc.DeviceTokenTTL, 30 * 24 * time.Hour},
	} {
		if *d.field <= 0 {
			*d.field = d.def
		}
	}
	if cc.DevicePollInterval < time.Second {
		cc.DevicePollInterval = time.Second // the wire carries whole seconds
	}
	if cc.HTTPClient == nil {
		cc.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return nil
}

func validProviderName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

func lowerAll(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	return out
}
