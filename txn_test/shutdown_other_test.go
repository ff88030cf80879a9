//go:build !linux

package txn_test

import "errors"

// shutdownFS is FS_IOC_SHUTDOWN, which only Linux has.
func shutdownFS(mnt string) error { return errors.ErrUnsupported }
