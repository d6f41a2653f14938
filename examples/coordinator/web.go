// web.go turns the OpenID Connect flags into the coordinator's web console configuration:
// one provider from -oidc-issuer and friends (or their NEXODUS_OIDC_* variables), several from
// a JSON file (-oidc-providers).

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nexodus-sdk/nexodus/coordinator"
)

type webFlags struct {
	externalURL      *string
	issuer           *string
	clientID         *string
	clientSecretFile *string
	name             *string
	displayName      *string
	allowedDomains   *string
	allowedEmails    *string
	providersFile    *string
}

func webFlagSet(fs *flag.FlagSet) *webFlags {
	return &webFlags{
		externalURL:      fs.String("external-url", "", "public base URL of the coordinator, e.g. https://nexodus.example.com (default $NEXODUS_EXTERNAL_URL; https://ACME-HOST with -acme-host)"),
		issuer:           fs.String("oidc-issuer", "", "OpenID provider issuer URL: turns on the web console and sign-up (default $NEXODUS_OIDC_ISSUER)"),
		clientID:         fs.String("oidc-client-id", "", "client ID registered at the provider (default $NEXODUS_OIDC_CLIENT_ID)"),
		clientSecretFile: fs.String("oidc-client-secret-file", "", "file holding the client secret (default $NEXODUS_OIDC_CLIENT_SECRET_FILE)"),
		name:             fs.String("oidc-name", "sso", "the provider's name in URLs: the redirect URI is EXTERNAL-URL/auth/callback/NAME"),
		displayName:      fs.String("oidc-display-name", "", "the provider's name on the sign-in button (default: -oidc-name)"),
		allowedDomains:   fs.String("oidc-allowed-domains", "", "comma-separated email domains whose verified addresses may sign in (default $NEXODUS_OIDC_ALLOWED_DOMAINS; empty with no allowed emails: anyone)"),
		allowedEmails:    fs.String("oidc-allowed-emails", "", "comma-separated verified email addresses that may sign in (default $NEXODUS_OIDC_ALLOWED_EMAILS)"),
		providersFile:    fs.String("oidc-providers", "", "JSON file listing several providers (default $NEXODUS_OIDC_PROVIDERS); see README"),
	}
}

// providerFile is one entry of the -oidc-providers file.
type providerFile struct {
	Name             string   `json:"name"`
	DisplayName      string   `json:"display_name"`
	Issuer           string   `json:"issuer"`
	ClientID         string   `json:"client_id"`
	ClientSecretFile string   `json:"client_secret_file"`
	Scopes           []string `json:"scopes"`
	AllowedDomains   []string `json:"allowed_domains"`
	AllowedEmails    []string `json:"allowed_emails"`
}

// console returns the console configuration, nil when no provider is configured.
func (w *webFlags) console(getenv func(string) string, acmeHost string) (*coordinator.ConsoleConfig, error) {
	def := func(p *string, env string) {
		if *p == "" {
			*p = getenv(env)
		}
	}
	def(w.externalURL, "NEXODUS_EXTERNAL_URL")
	def(w.issuer, "NEXODUS_OIDC_ISSUER")
	def(w.clientID, "NEXODUS_OIDC_CLIENT_ID")
	def(w.clientSecretFile, "NEXODUS_OIDC_CLIENT_SECRET_FILE")
	def(w.allowedDomains, "NEXODUS_OIDC_ALLOWED_DOMAINS")
	def(w.allowedEmails, "NEXODUS_OIDC_ALLOWED_EMAILS")
	def(w.providersFile, "NEXODUS_OIDC_PROVIDERS")

	var ps []coordinator.OIDCProvider
	if *w.issuer != "" {
		secret, err := readSecretFile("-oidc-client-secret-file", *w.clientSecretFile)
		if err != nil {
			return nil, err
		}
		ps = append(ps, coordinator.OIDCProvider{
			Name: *w.name, DisplayName: *w.displayName, Issuer: *w.issuer, ClientID: *w.clientID, ClientSecret: secret,
			AllowedDomains: splitList(*w.allowedDomains), AllowedEmails: splitList(*w.allowedEmails),
		})
	} else if *w.clientID != "" || *w.clientSecretFile != "" {
		return nil, errors.New("-oidc-client-id and -oidc-client-secret-file need -oidc-issuer")
	}
	if *w.providersFile != "" {
		b, err := os.ReadFile(*w.providersFile)
		if err != nil {
			return nil, fmt.Errorf("-oidc-providers: %w", err)
		}
		var entries []providerFile
		if err := json.Unmarshal(b, &entries); err != nil {
			return nil, fmt.Errorf("-oidc-providers %s: %w", *w.providersFile, err)
		}
		for _, e := range entries {
			secret, err := readSecretFile("client_secret_file of provider "+e.Name, e.ClientSecretFile)
			if err != nil {
				return nil, err
			}
			ps = append(ps, coordinator.OIDCProvider{
				Name: e.Name, DisplayName: e.DisplayName, Issuer: e.Issuer, ClientID: e.ClientID, ClientSecret: secret,
				Scopes: e.Scopes, AllowedDomains: e.AllowedDomains, AllowedEmails: e.AllowedEmails,
			})
		}
	}
	if len(ps) == 0 {
		return nil, nil
	}
	ext := *w.externalURL
	if ext == "" && acmeHost != "" {
		ext = "https://" + acmeHost
	}
	if ext == "" {
		return nil, errors.New("the web console needs -external-url (or NEXODUS_EXTERNAL_URL): the URL people open, which the redirect URIs registered at the providers start with")
	}
	return &coordinator.ConsoleConfig{ExternalURL: ext, Providers: ps}, nil
}

// readSecretFile reads a secret kept in a file that others may not read.
func readSecretFile(what, path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s is required: the file holding the client secret", what)
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: %s is readable by others (mode %v): chmod 600 it", what, path, info.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", what, path)
	}
	return s, nil
}
