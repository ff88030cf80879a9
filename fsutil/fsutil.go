// Package fsutil holds the filesystem helpers that txnpair's lock and txn
// packages share: durable directory syncs, the identity of a file
// (device and inode, or volume and file index on Windows), the type of the
// filesystem under a path, and the naming and clean-up of txnpair's own
// leftover files.
//
// It holds nothing that the standard library or renameio already does.
package fsutil

import (
	"os"
	"path/filepath"
)

// FileID identifies a file on one machine: device and inode on Unix, volume
// serial number and file index on Windows. Two paths with equal FileIDs name
// the same file (hard links included). A FileID is comparable and can be a map
// key or be stored, but inode numbers are reused once a file is deleted.
type FileID struct {
	Dev uint64
	Ino uint64
}

// FileIDOf returns the identity of the open file f.
func FileIDOf(f *os.File) (FileID, error) { return fileIDOf(f) }

// InfoID returns the identity of the open file f, whose FileInfo fi the
// caller already has; on Unix it costs no system call.
func InfoID(f *os.File, fi os.FileInfo) (FileID, error) { return infoID(f, fi) }

// PathID returns the identity of the file at path, following symbolic links.
func PathID(path string) (FileID, error) { return pathID(path) }

// SameFile reports whether the open file f is still the file that path names.
// It is false when path has been removed or replaced (by rename, say) since f
// was opened; an error is returned only when f itself cannot be examined or
// path cannot be examined for a reason other than its absence.
func SameFile(f *os.File, path string) (bool, error) {
	fid, err := FileIDOf(f)
	if err != nil {
		return false, err
	}
	pid, err := PathID(path)
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	return fid == pid, nil
}

// SyncDir makes the entries of directory dir durable: after it returns nil,
// files created, renamed or removed in dir before the call survive a power
// loss. It is needed after a rename or a create whose result must survive,
// because syncing a file does not sync the name that points to it.
//
// On Windows directories cannot be synced through the file API; SyncDir
// returns nil there and callers rely on MOVEFILE_WRITE_THROUGH instead.
func SyncDir(dir string) error { return syncDir(dir) }

// FSType returns a short name for the type of the filesystem holding path
// ("ext4", "xfs", "tmpfs", "nfs", "cifs", "fuse", "ntfs", ...), or
// "unknown" with a nil error when the system reports a type txnpair does not
// recognise.
func FSType(path string) (string, error) { return fsType(path) }

// IsNetworkFS reports whether fstype (as returned by FSType) names a network
// or userspace filesystem on which byte-range locks are commonly missing or
// unreliable.
func IsNetworkFS(fstype string) bool {
	switch fstype {
	case "nfs", "cifs", "smb", "smb2", "smbfs", "lustre", "fuse", "9p", "afs", "gpfs", "ceph", "glusterfs", "webdav", "vboxsf", "virtiofs":
		return true
	}
	return false
}

// dirOf returns the directory holding path, never "".
func dirOf(path string) string {
	return filepath.Dir(path)
}
