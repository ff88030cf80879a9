//go:build !windows

package txn

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// stagedFile is the new content of the data file, written to a temporary file
// in the data file's own directory (so the rename cannot cross filesystems)
// by renameio.
type stagedFile struct {
	pf     *renameio.PendingFile
	target string
	closed bool // closed by us rather than by renameio
}

func stage(target string, perm fs.FileMode) (*stagedFile, error) {
	pf, err := renameio.NewPendingFile(target,
		renameio.WithTempDir(filepath.Dir(target)),
		renameio.WithPermissions(perm),
		renameio.WithExistingPermissions())
	if err != nil {
		return nil, err
	}
	return &stagedFile{pf: pf, target: target}, nil
}

func (s *stagedFile) file() *os.File { return s.pf.File }
func (s *stagedFile) name() string   { return s.pf.Name() }

// replace renames the staged file over the target. With syncData it lets
// renameio sync the file and rename it; without, the caller has synced it
// already (or wants no sync). durable matters only on Windows: here the
// caller syncs the directory.
func (s *stagedFile) replace(syncData, durable bool) error {
	if syncData {
		return s.pf.CloseAtomicallyReplace()
	}
	s.closed = true
	if err := s.pf.File.Close(); err != nil {
		return err
	}
	return os.Rename(s.pf.Name(), s.target)
}

// close closes the staged file and leaves it for recovery, after a failure
// past the point of no return.
func (s *stagedFile) close() {
	if !s.closed {
		s.closed = true
		s.pf.File.Close()
	}
}

// replaceable reports whether the target can be replaced now. It always can
// on Unix.
func replaceable(target string) error { return nil }

// discard removes the staged file; a no-op after a successful replace.
func (s *stagedFile) discard() error {
	if s.closed {
		err := os.Remove(s.pf.Name())
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	if err := s.pf.Cleanup(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// replaceFile renames a staged file left by a crashed commit over target.
// With sync, it syncs the staged file first: the commit that staged it may
// have died before its own sync, and a rename made durable before the data
// it names can leave an empty or torn data file after a power loss (seen on
// xfs). The caller syncs the directory.
func replaceFile(staged, target string, sync bool) error {
	if sync {
		f, err := os.Open(staged)
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
	return os.Rename(staged, target)
}
