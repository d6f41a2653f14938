//go:build unix

package mesh

import (
	"runtime"
	"syscall"
)

// maxRSSKiB is the process's peak resident set size.
func maxRSSKiB() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) / 1024, nil // bytes there, KiB elsewhere
	}
	return int64(ru.Maxrss), nil
}
