//go:build !unix && !windows

package lock

import (
	"context"
	"errors"
	"os"
)

func lockTry(f *os.File, mode Mode, off int64) error { return ErrUnsupported }

func lockWait(ctx context.Context, f *os.File, mode Mode, off int64) error { return ErrUnsupported }

func unlock(f *os.File, off int64) error { return nil }

func closeFile(f *os.File) error { return f.Close() }

func isUnsupported(err error) bool { return err == ErrUnsupported }

func queryHolder(path string, off int64) (HolderInfo, error) { return HolderInfo{}, ErrUnsupported }

func holderOf(f *os.File, off int64, search bool) (HolderInfo, error) {
	return HolderInfo{}, ErrUnsupported
}

// releaseFile drops the lock on f and closes it.
func releaseFile(f *os.File, off int64) error {
	return errors.Join(unlock(f, off), closeFile(f))
}

// openNonblock keeps an open of a FIFO from waiting for a writer; the file is
// then refused as not regular. It has no effect on regular files.
const openNonblock = 0

func reserve(f *os.File, n int64) error { return nil }

func syncData(f *os.File) error { return f.Sync() }
