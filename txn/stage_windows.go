package txn

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/windows"
)

// stagedFile is the new content of the data file, written to a temporary file
// in the data file's own directory. renameio exports nothing on Windows; the
// file is named as renameio names its own (a dot, the target's base name,
// digits) so that recovery treats both alike, and it replaces the target with
// MoveFileEx.
type stagedFile struct {
	f      *os.File
	target string
	closed bool
	done   bool
}

func stage(target string, perm fs.FileMode) (*stagedFile, error) {
	prefix := filepath.Join(filepath.Dir(target), "."+filepath.Base(target))
	for attempt := 0; ; attempt++ {
		name := prefix + strconv.FormatInt(rand.Int64(), 10)
		f, err := createShared(name, perm)
		if err == nil {
			return &stagedFile{f: f, target: target}, nil
		}
		if !os.IsExist(err) || attempt == 100 {
			return nil, err
		}
	}
}

// createShared creates the file at name, which must not exist, for reading
// and writing. Unlike os.OpenFile it shares delete access, so that while the
// handle is open the file can still be renamed over the target or removed:
// after a commit fails past its point of no return, recovery in the same
// process must be able to do both.
func createShared(name string, perm fs.FileMode) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if perm&0o200 == 0 {
		attrs = windows.FILE_ATTRIBUTE_READONLY
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.CREATE_NEW, attrs, 0)
	if err != nil {
		if err == windows.ERROR_FILE_EXISTS {
			err = fs.ErrExist
		}
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(h), name), nil
}

func (s *stagedFile) file() *os.File { return s.f }
func (s *stagedFile) name() string   { return s.f.Name() }

// replace moves the staged file over the target: with syncData it flushes
// the file first; with durable the move is made with MOVEFILE_WRITE_THROUGH,
// which returns once the move itself is on disk (what a directory sync does
// on Unix).
func (s *stagedFile) replace(syncData, durable bool) error {
	if syncData {
		if err := s.f.Sync(); err != nil {
			return err
		}
	}
	s.closed = true
	if err := s.f.Close(); err != nil {
		return err
	}
	if err := moveFile(s.f.Name(), s.target, durable); err != nil {
		return err
	}
	s.done = true
	return nil
}

// close closes the staged file and leaves it for recovery, after a failure
// past the point of no return: an open handle would keep recovery in this
// process from moving it.
func (s *stagedFile) close() {
	if !s.closed {
		s.closed = true
		s.f.Close()
	}
}

// replaceable returns an error if the target cannot be replaced now because
// another handle has it open without FILE_SHARE_DELETE (os.Open does that):
// MoveFileEx would fail with access denied. Commit asks before its point of
// no return, so that it can still roll back; a handle opened after the
// question still makes the move fail, and then recovery completes the commit
// once the handle is closed.
func replaceable(target string) error {
	p, err := windows.UTF16PtrFromString(target)
	if err != nil {
		return err
	}
	h, err := windows.CreateFile(p, windows.DELETE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	switch err {
	case nil:
		windows.CloseHandle(h)
		return nil
	case windows.ERROR_FILE_NOT_FOUND, windows.ERROR_PATH_NOT_FOUND:
		return nil
	}
	return &os.PathError{Op: "replace", Path: target, Err: fmt.Errorf("the data file is open in another handle that does not share delete access: %w", err)}
}

func (s *stagedFile) discard() error {
	if s.done {
		return nil
	}
	if !s.closed {
		s.closed = true
		s.f.Close()
	}
	err := os.Remove(s.f.Name())
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// replaceFile moves staged over target. MOVEFILE_WRITE_THROUGH makes the call
// return only once the move is flushed to disk, which is what a directory sync
// does on Unix.
func replaceFile(staged, target string, sync bool) error {
	if sync {
		f, err := os.OpenFile(staged, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return moveFile(staged, target, sync)
}

// moveFile is MoveFileEx with MOVEFILE_REPLACE_EXISTING, and
// MOVEFILE_WRITE_THROUGH when durable.
func moveFile(staged, target string, durable bool) error {
	from, err := windows.UTF16PtrFromString(staged)
	if err != nil {
		return err
	}
	to, err := windows.UTF16PtrFromString(target)
	if err != nil {
		return err
	}
	flags := uint32(windows.MOVEFILE_REPLACE_EXISTING)
	if durable {
		flags |= windows.MOVEFILE_WRITE_THROUGH
	}
	if err := windows.MoveFileEx(from, to, flags); err != nil {
		return &os.LinkError{Op: "MoveFileEx", Old: staged, New: target, Err: err}
	}
	return nil
}
