//go:build !unix

package mesh

import "errors"

func maxRSSKiB() (int64, error) { return 0, errors.New("peak RSS is measured on Unix only") }
