//go:build linux

package natlab

import "runtime"

// sysSetns is setns(2)'s number; the syscall package does not define SYS_SETNS everywhere.
var sysSetns = map[string]uintptr{
	"amd64": 308, "arm64": 268, "riscv64": 268, "loong64": 268,
	"386": 346, "arm": 375, "ppc64le": 350, "s390x": 339,
}[runtime.GOARCH]
