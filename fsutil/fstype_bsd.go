//go:build darwin || freebsd || dragonfly

package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

func fsType(path string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "", &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	name := unix.ByteSliceToString(st.Fstypename[:])
	switch name {
	case "":
		return "unknown", nil
	case "smbfs":
		return "smb", nil
	case "fusefs", "macfuse", "osxfuse":
		return "fuse", nil
	}
	return name, nil
}
