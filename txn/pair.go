package txn

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/txnpair/txnpair/fsutil"
)

// pair is a validated metadata and data path, with symbolic links resolved.
type pair struct {
	meta, data string
	record     string // the commit record beside meta

	// What resolve found, for the check that the two paths are not one file
	// (checkSame): nil for a file that did not exist.
	metaPath, dataPath string
	mfi, dfi           fs.FileInfo
}

// resolvePair checks the two paths before anything is locked or created.
// Whether two existing paths are one file (a hard link) is left to
// checkSame, under the lock.
func resolvePair(op, metaPath, dataPath string) (pair, error) {
	meta, mfi, err := resolve(op, metaPath, "metadata")
	if err != nil {
		return pair{}, err
	}
	data, dfi, err := resolve(op, dataPath, "data")
	if err != nil {
		return pair{}, err
	}
	am, err1 := filepath.Abs(meta)
	ad, err2 := filepath.Abs(data)
	if err1 == nil && err2 == nil && am == ad {
		return pair{}, sameFileError(op, metaPath, dataPath)
	}
	p := pair{meta: meta, data: data, record: fsutil.RecordPath(meta),
		metaPath: metaPath, dataPath: dataPath, mfi: mfi, dfi: dfi}
	if filepath.Clean(p.data) == filepath.Clean(p.record) {
		return pair{}, &Error{Op: op, Path: dataPath, Err: fmt.Errorf("%w: the data path is the metadata's commit record", ErrInvalidPath)}
	}
	return p, nil
}

// checkSame returns ErrSameFile if both paths existed and name one file. It
// runs under the lock: on Windows, os.SameFile opens both files to read
// their IDs, and an open handle, however brief, makes a concurrent commit's
// MoveFileEx over the data file fail; under the lock no commit runs.
func (p *pair) checkSame(op string) error {
	if p.mfi != nil && p.dfi != nil && os.SameFile(p.mfi, p.dfi) {
		return sameFileError(op, p.metaPath, p.dataPath)
	}
	return nil
}

func sameFileError(op, metaPath, dataPath string) error {
	return &Error{Op: op, Path: metaPath, Err: fmt.Errorf("%w: %s and %s", ErrSameFile, metaPath, dataPath)}
}

// resolve follows a symbolic link at path and checks that what it names is a
// regular file, or absent with an existing directory. It returns the resolved
// path and, when the file exists, its FileInfo.
func resolve(op, path, what string) (string, fs.FileInfo, error) {
	invalid := func(format string, args ...any) error {
		return &Error{Op: op, Path: path, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidPath}, args...)...)}
	}
	if path == "" {
		return "", nil, invalid("empty %s path", what)
	}
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		real, err := filepath.EvalSymlinks(path)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, invalid("%s path is a dangling symbolic link", what)
		}
		if err != nil {
			return "", nil, &Error{Op: op, Path: path, Err: err}
		}
		path = real
		fi, err = os.Stat(path)
	}
	switch {
	case err == nil && fi.IsDir():
		return "", nil, invalid("%s path is a directory", what)
	case err == nil && !fi.Mode().IsRegular():
		return "", nil, invalid("%s path is not a regular file (%v)", what, fi.Mode().Type())
	case err == nil:
		return path, fi, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", nil, &Error{Op: op, Path: path, Err: err}
	}
	// Absent: its directory must exist.
	dir := filepath.Dir(path)
	dfi, err := os.Stat(dir)
	if err != nil {
		return "", nil, &Error{Op: op, Path: path, Err: fmt.Errorf("%s directory: %w", what, err)}
	}
	if !dfi.IsDir() {
		return "", nil, &Error{Op: op, Path: path, Err: &fs.PathError{Op: "stat", Path: dir, Err: syscall.ENOTDIR}}
	}
	return path, nil, nil
}
