package txn_test

import (
	"os"

	"golang.org/x/sys/unix"
)

// fsIOCShutdown is FS_IOC_SHUTDOWN, _IOR('X', 125, __u32), which x/sys does
// not define. ext4 and xfs implement it; btrfs does not.
const fsIOCShutdown = 0x8004587d

// shutdownFS shuts down the filesystem mounted at mnt as a power loss would:
// with FS_SHUTDOWN_FLAGS_NOLOGFLUSH, the journal is not flushed, so
// everything not yet made durable is lost, and every later write fails.
func shutdownFS(mnt string) error {
	f, err := os.Open(mnt)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.IoctlSetPointerInt(int(f.Fd()), fsIOCShutdown, unix.FS_SHUTDOWN_FLAGS_NOLOGFLUSH)
}
