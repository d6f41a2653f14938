// Package privatefile writes files only their owner may read, atomically: the data goes to a
// temporary 0600 file beside the target, is synced, and is renamed over the target, so a crash
// never leaves a half-written key or token behind and nobody else can read it at any moment.
package privatefile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, mode 0600, atomically.
func Write(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing is there
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
