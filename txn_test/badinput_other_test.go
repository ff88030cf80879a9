//go:build !linux

package txn_test

import "errors"

// platformBadCases: the failing-filesystem cases need Linux (tmpfs mounts,
// credentials of a child).
func platformBadCases() []badCase { return nil }

func childBadInput() error { return errors.ErrUnsupported }
