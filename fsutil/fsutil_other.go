//go:build !unix && !windows

package fsutil

import (
	"errors"
	"os"
)

func fileIDOf(f *os.File) (FileID, error) {
	return FileID{}, &os.PathError{Op: "fileid", Path: f.Name(), Err: errors.ErrUnsupported}
}

func pathID(path string) (FileID, error) {
	return FileID{}, &os.PathError{Op: "fileid", Path: path, Err: errors.ErrUnsupported}
}

func syncDir(dir string) error { return nil }

func infoID(f *os.File, fi os.FileInfo) (FileID, error) { return fileIDOf(f) }
