package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nexodus-sdk/nexodus/internal/privatefile"
	"github.com/nexodus-sdk/nexodus/key"
)

// Files in StateDir. The key is kept apart from the rest so its permissions stand out.
const (
	keyFile    = "wireguard.key"
	deviceFile = "device.json"
)

// deviceState is what a node remembers of its registration between runs.
type deviceState struct {
	ControlURL     string `json:"control_url"`
	DeviceID       string `json:"device_id"`
	OrganizationID string `json:"organization_id"`
	Token          string `json:"token"`
}

// stateStore reads and writes the node's state; with an empty dir everything stays in memory.
type stateStore struct {
	dir string
}

func (s stateStore) ephemeral() bool { return s.dir == "" }

// loadOrCreateKey returns the node's WireGuard private key, creating and saving it on first use.
func (s stateStore) loadOrCreateKey() (key.Key, error) {
	if s.ephemeral() {
		return key.Generate()
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return key.Key{}, fmt.Errorf("create state dir: %w", err)
	}
	path := filepath.Join(s.dir, keyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := key.Parse(strings.TrimSpace(string(b)))
		if err != nil {
			return key.Key{}, fmt.Errorf("read %s: %w", path, err)
		}
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
		k, err := key.Generate()
		if err != nil {
			return key.Key{}, err
		}
		if err := privatefile.Write(path, []byte(k.String()+"\n")); err != nil {
			return key.Key{}, fmt.Errorf("save key: %w", err)
		}
		return k, nil
	default:
		return key.Key{}, fmt.Errorf("read key: %w", err)
	}
}

// loadDevice returns the saved registration, or a zero value when there is none.
func (s stateStore) loadDevice() (deviceState, error) {
	var st deviceState
	if s.ephemeral() {
		return st, nil
	}
	b, err := os.ReadFile(filepath.Join(s.dir, deviceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read device state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read device state: %w", err)
	}
	return st, nil
}

func (s stateStore) saveDevice(st deviceState) error {
	if s.ephemeral() {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save device state: %w", err)
	}
	if err := privatefile.Write(filepath.Join(s.dir, deviceFile), b); err != nil {
		return fmt.Errorf("save device state: %w", err)
	}
	return nil
}
