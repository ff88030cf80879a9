package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// Magic numbers from statfs(2) and linux/magic.h.
var fsMagic = map[int64]string{
	0xEF53:     "ext4", // ext2, ext3 and ext4 share it
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0x6969:     "nfs",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x517B:     "smb",
	0x0BD00BD0: "lustre",
	0x65735546: "fuse",
	0x01021997: "9p",
	0x794C7630: "overlay",
	0x2FC12FC1: "zfs",
	0x4D44:     "vfat",
	0x5346544E: "ntfs",
	0x7366746E: "ntfs",
	0xF2F52010: "f2fs",
	0x00C36400: "ceph",
	0x47504653: "gpfs",
	0x5346414F: "afs",
	0x858458F6: "ramfs",
	0x6165676C: "virtiofs", // reported by some kernels; most report fuse
	0x786F4256: "vboxsf",
	0x9FA0:     "proc",
}

func fsType(path string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "", &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	if name, ok := fsMagic[int64(uint32(st.Type))]; ok {
		return name, nil
	}
	return "unknown", nil
}
