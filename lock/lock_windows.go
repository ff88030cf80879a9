package lock

// Windows: LockFileEx on one byte.
//
// Windows locks belong to the handle and are mandatory: while a byte is
// locked, other handles can neither read nor write it, which is why the Lock
// reads and writes its file only through the locking handle. Go opens files
// for synchronous I/O, so a waiting LockFileEx blocks its thread; a cancelled
// wait is ended with CancelSynchronousIo on that thread.

import (
	"context"
	"errors"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/windows"
)

var (
	modkernel32             = windows.NewLazySystemDLL("kernel32.dll")
	procCancelSynchronousIo = modkernel32.NewProc("CancelSynchronousIo")
)

const threadTerminate = 0x0001 // THREAD_TERMINATE, the right CancelSynchronousIo needs

func overlapped(off int64) *windows.Overlapped {
	return &windows.Overlapped{Offset: uint32(off), OffsetHigh: uint32(off >> 32)}
}

func lockFlags(mode Mode) uint32 {
	if mode == Exclusive {
		return windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	return 0
}

func lockTry(f *os.File, mode Mode, off int64) error {
	err := windows.LockFileEx(windows.Handle(f.Fd()), lockFlags(mode)|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, overlapped(off))
	if err == windows.ERROR_LOCK_VIOLATION || err == windows.ERROR_IO_PENDING {
		return errWouldBlock
	}
	return err
}

// recancel is how long a cancelling Acquire waits before cancelling the
// waiting thread's I/O again, in case the first cancel came before the
// LockFileEx call started.
const recancel = 20 * time.Millisecond

func lockWait(ctx context.Context, f *os.File, mode Mode, off int64) error {
	err := lockTry(f, mode, off)
	if err != errWouldBlock {
		return err
	}
	h := windows.Handle(f.Fd())
	if ctx.Done() == nil {
		return windows.LockFileEx(h, lockFlags(mode), 0, 1, 0, overlapped(off))
	}
	tidc := make(chan uint32, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tidc <- windows.GetCurrentThreadId()
		done <- windows.LockFileEx(h, lockFlags(mode), 0, 1, 0, overlapped(off))
	}()
	tid := <-tidc
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	th, terr := windows.OpenThread(threadTerminate, false, tid)
	for {
		if terr == nil {
			procCancelSynchronousIo.Call(uintptr(th))
		}
		select {
		case err := <-done:
			if terr == nil {
				windows.CloseHandle(th)
			}
			if err == nil {
				unlock(f, off)
			}
			return ctx.Err()
		case <-time.After(recancel):
		}
	}
}

func unlock(f *os.File, off int64) error {
	err := windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, overlapped(off))
	if err == windows.ERROR_NOT_LOCKED {
		return nil
	}
	return err
}

func closeFile(f *os.File) error { return f.Close() }

func isUnsupported(err error) bool {
	return errors.Is(err, windows.ERROR_NOT_SUPPORTED) || errors.Is(err, windows.ERROR_INVALID_FUNCTION)
}

func queryHolder(path string, off int64) (HolderInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return HolderInfo{}, err
	}
	defer f.Close()
	return holderOf(f, off, true)
}

// holderOf probes: Windows has no call that reports a lock's owner. An
// exclusive probe that succeeds means nobody holds the byte; else a shared
// probe that succeeds means the holders are shared. Each probe that succeeds
// is undone at once. No pid is known.
func holderOf(f *os.File, off int64, search bool) (HolderInfo, error) {
	switch err := lockTry(f, Exclusive, off); err {
	case nil:
		unlock(f, off)
		return HolderInfo{}, nil
	case errWouldBlock:
	default:
		return HolderInfo{}, err
	}
	switch err := lockTry(f, Shared, off); err {
	case nil:
		unlock(f, off)
		return HolderInfo{Held: true, Mode: Shared}, nil
	case errWouldBlock:
		return HolderInfo{Held: true, Mode: Exclusive}, nil
	default:
		return HolderInfo{}, err
	}
}

// releaseFile drops the lock on f and closes it.
func releaseFile(f *os.File, off int64) error {
	return errors.Join(unlock(f, off), closeFile(f))
}

// openNonblock keeps an open of a FIFO from waiting for a writer; the file is
// then refused as not regular. It has no effect on regular files.
const openNonblock = 0

func reserve(f *os.File, n int64) error { return nil }
