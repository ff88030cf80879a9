package fsutil

import (
	"os"

	"golang.org/x/sys/windows"
)

func fileIDOf(f *os.File) (FileID, error) {
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(f.Fd()), &info); err != nil {
		return FileID{}, &os.PathError{Op: "GetFileInformationByHandle", Path: f.Name(), Err: err}
	}
	return FileID{
		Dev: uint64(info.VolumeSerialNumber),
		Ino: uint64(info.FileIndexHigh)<<32 | uint64(info.FileIndexLow),
	}, nil
}

func pathID(path string) (FileID, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return FileID{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// Zero access rights: enough to query the file's identity, and it
	// neither conflicts with other handles' sharing modes nor with locks.
	h, err := windows.CreateFile(p, 0,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return FileID{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer windows.CloseHandle(h)
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		return FileID{}, &os.PathError{Op: "GetFileInformationByHandle", Path: path, Err: err}
	}
	return FileID{
		Dev: uint64(info.VolumeSerialNumber),
		Ino: uint64(info.FileIndexHigh)<<32 | uint64(info.FileIndexLow),
	}, nil
}

// syncDir only checks that dir is a directory: Windows cannot flush a
// directory handle opened for reading, and renames made with
// MOVEFILE_WRITE_THROUGH are flushed by the call itself.
func syncDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &os.PathError{Op: "sync", Path: dir, Err: windows.ERROR_DIRECTORY}
	}
	return nil
}

func fsType(path string) (string, error) {
	// GetVolumePathName answers for paths that do not exist.
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return "", err
	}
	root := make([]uint16, windows.MAX_PATH+1)
	if err := windows.GetVolumePathName(p, &root[0], uint32(len(root))); err != nil {
		return "", &os.PathError{Op: "GetVolumePathName", Path: path, Err: err}
	}
	name := make([]uint16, windows.MAX_PATH+1)
	if err := windows.GetVolumeInformation(&root[0], nil, 0, nil, nil, nil, &name[0], uint32(len(name))); err != nil {
		return "", &os.PathError{Op: "GetVolumeInformation", Path: path, Err: err}
	}
	switch s := windows.UTF16ToString(name); s {
	case "NTFS":
		return "ntfs", nil
	case "ReFS":
		return "refs", nil
	case "FAT32", "FAT":
		return "vfat", nil
	case "":
		return "unknown", nil
	default:
		return s, nil
	}
}

func infoID(f *os.File, fi os.FileInfo) (FileID, error) { return fileIDOf(f) }
