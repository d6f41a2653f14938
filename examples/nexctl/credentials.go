// credentials.go keeps the tokens "nexctl login" gets, one per coordinator URL, in
// credentials.json under the user's config directory (os.UserConfigDir()/nexodus, or
// $NEXODUS_CONFIG_DIR), readable by the user only.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nexodus-sdk/nexodus/internal/privatefile"
)

// credentials is the file's content.
type credentials struct {
	// Coordinators maps a coordinator URL (as given to --url, without a trailing slash) to
	// its saved login.
	Coordinators map[string]savedLogin `json:"coordinators"`
}

type savedLogin struct {
	Token    string    `json:"token"`
	Username string    `json:"username,omitempty"`
	SavedAt  time.Time `json:"saved_at"`
}

// credentialsPath is where the saved logins are.
func credentialsPath(getenv func(string) string) (string, error) {
	dir := getenv("NEXODUS_CONFIG_DIR")
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("no config directory for saved logins (set NEXODUS_CONFIG_DIR): %w", err)
		}
		dir = filepath.Join(base, "nexodus")
	}
	return filepath.Join(dir, "credentials.json"), nil
}

func credentialsKey(url string) string { return strings.TrimRight(url, "/") }

// readCredentials reads the file; a missing file is no logins. A file others may read is
// refused, as its tokens would be theirs too.
func readCredentials(path string) (credentials, error) {
	c := credentials{Coordinators: map[string]savedLogin{}}
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return c, fmt.Errorf("%s is readable by others (mode %v): chmod 600 it, or delete it and run 'nexctl login' again", path, info.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w (delete it and run 'nexctl login' again)", path, err)
	}
	if c.Coordinators == nil {
		c.Coordinators = map[string]savedLogin{}
	}
	return c, nil
}

// writeCredentials replaces the file atomically, mode 0600 in a directory of mode 0700.
func writeCredentials(path string, c credentials) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return privatefile.Write(path, append(b, '\n'))
}

// loadToken returns the token saved for the coordinator at url, "" when there is none.
func loadToken(getenv func(string) string, url string) (string, error) {
	path, err := credentialsPath(getenv)
	if err != nil {
		return "", nil // no config directory: nothing was saved
	}
	c, err := readCredentials(path)
	if err != nil {
		return "", fmt.Errorf("saved logins: %w", err)
	}
	return c.Coordinators[credentialsKey(url)].Token, nil
}

// saveToken saves (or, with an empty token, forgets) the login for url and returns the path.
func saveToken(getenv func(string) string, url string, l savedLogin) (string, error) {
	path, err := credentialsPath(getenv)
	if err != nil {
		return "", err
	}
	c, err := readCredentials(path)
	if err != nil {
		return "", err
	}
	if l.Token == "" {
		delete(c.Coordinators, credentialsKey(url))
	} else {
		c.Coordinators[credentialsKey(url)] = l
	}
	return path, writeCredentials(path, c)
}
