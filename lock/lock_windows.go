package lock

// Windows: LockFileEx on one byte.
//
// Windows locks belong to the file object behind a handle (and to duplicates
// of that handle) and are mandatory: while a byte is locked, other opens of
// the file can neither read nor write it, which is why the Lock reads and
// writes its file only through the locking handle.
//
// Go opens files for synchronous I/O, so a LockFileEx that waits blocks its
// thread. A cancellable wait runs in a goroutine locked to its thread, on a
// duplicate of the file's handle (so the lock it gets is the file's), and a
// cancelled wait is ended with CancelSynchronousIo on that thread. Two cases
// leave the wait running instead:
//
//   - the cancel arrives in the instant before the thread enters LockFileEx;
//   - Wine, which cannot cancel a waiting LockFileEx.
//
// Acquire then returns at once all the same, and the goroutine is left behind
// with the duplicate handle: when the holder releases and the system grants
// the lock, it drops it at once and closes the handle. Until then it costs a
// thread and keeps the file open (sharing read, write and delete).
//
// Overlapped handles would make the wait cancellable with CancelIoEx, but
// Wine returns ERROR_IO_PENDING for an overlapped LockFileEx and never
// completes it, so the code that runs under Wine in CI would not be the code
// that runs on Windows.

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/windows"
)

var (
	modkernel32             = windows.NewLazySystemDLL("kernel32.dll")
	procCancelSynchronousIo = modkernel32.NewProc("CancelSynchronousIo")
	procReOpenFile          = modkernel32.NewProc("ReOpenFile")
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
	return lockTryHandle(windows.Handle(f.Fd()), mode, off)
}

func lockTryHandle(h windows.Handle, mode Mode, off int64) error {
	err := windows.LockFileEx(h, lockFlags(mode)|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, overlapped(off))
	if err == windows.ERROR_LOCK_VIOLATION || err == windows.ERROR_IO_PENDING {
		return errWouldBlock
	}
	return err
}

func lockWait(ctx context.Context, f *os.File, mode Mode, off int64) error {
	err := lockTry(f, mode, off)
	if err != errWouldBlock {
		return err
	}
	if ctx.Done() == nil {
		return windows.LockFileEx(windows.Handle(f.Fd()), lockFlags(mode), 0, 1, 0, overlapped(off))
	}

	// The waiter gets its own handle of the same file object, so that it
	// can outlive f when it is left behind.
	self := windows.CurrentProcess()
	var dup windows.Handle
	if err := windows.DuplicateHandle(self, windows.Handle(f.Fd()), self, &dup, 0, false, windows.DUPLICATE_SAME_ACCESS); err != nil {
		return err
	}
	var (
		cancelled atomic.Bool
		tidc      = make(chan uint32, 1)
		done      = make(chan error) // unbuffered: a send means lockWait took the result
		abandon   = make(chan struct{})
	)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tidc <- windows.GetCurrentThreadId()
		err := context.Canceled
		if !cancelled.Load() {
			err = windows.LockFileEx(dup, lockFlags(mode), 0, 1, 0, overlapped(off))
		}
		select {
		case done <- err:
			// lockWait has the result and closes dup.
		case <-abandon:
			if err == nil {
				unlockHandle(dup, off)
			}
			windows.CloseHandle(dup)
		}
	}()
	tid := <-tidc

	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		cancelled.Store(true)
		if !cancelThreadIO(tid) {
			// Nothing to cancel: the waiter has not reached LockFileEx,
			// has just left it, or cannot be cancelled (Wine).
			select {
			case werr = <-done:
			default:
				close(abandon)
				return ctx.Err()
			}
		} else {
			werr = <-done
		}
		if werr == nil {
			// Granted as it was cancelled: the lock is f's; drop it.
			unlockHandle(dup, off)
		}
		werr = ctx.Err()
	}
	windows.CloseHandle(dup)
	return werr
}

// cancelThreadIO cancels the synchronous I/O the thread tid is blocked in and
// reports whether there was any.
func cancelThreadIO(tid uint32) bool {
	if procCancelSynchronousIo.Find() != nil {
		return false
	}
	th, err := windows.OpenThread(threadTerminate, false, tid)
	if err != nil {
		return false
	}
	defer windows.CloseHandle(th)
	r, _, _ := procCancelSynchronousIo.Call(uintptr(th))
	return r != 0
}

func unlock(f *os.File, off int64) error {
	return unlockHandle(windows.Handle(f.Fd()), off)
}

func unlockHandle(h windows.Handle, off int64) error {
	err := windows.UnlockFileEx(h, 0, 1, 0, overlapped(off))
	if err == windows.ERROR_NOT_LOCKED {
		return nil
	}
	return err
}

func closeFile(f *os.File) error { return f.Close() }

// releaseFile drops the lock on f and closes it.
func releaseFile(f *os.File, off int64) error {
	return errors.Join(unlock(f, off), closeFile(f))
}

// openNonblock is for FIFOs on Unix; Windows opens never wait.
const openNonblock = 0

func reserve(f *os.File, n int64) error { return nil }

func isUnsupported(err error) bool {
	return errors.Is(err, windows.ERROR_NOT_SUPPORTED) || errors.Is(err, windows.ERROR_INVALID_FUNCTION)
}

func queryHolder(path string, off int64) (HolderInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return HolderInfo{}, err
	}
	defer f.Close()
	return probe(windows.Handle(f.Fd()), off)
}

// holderOf probes the byte through a new open of f's file, never through f:
// f's file object may have a wait left behind in it, behind which Windows
// would queue the probe.
func holderOf(f *os.File, off int64, search bool) (HolderInfo, error) {
	r, _, err := procReOpenFile.Call(f.Fd(), windows.GENERIC_READ,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, 0)
	h := windows.Handle(r)
	if h == windows.InvalidHandle {
		return HolderInfo{}, &os.PathError{Op: "ReOpenFile", Path: f.Name(), Err: err}
	}
	defer windows.CloseHandle(h)
	return probe(h, off)
}

// probe finds the holder of the byte by trying it: Windows has no call that
// reports a lock's owner. An exclusive try that succeeds means nobody holds
// the byte; else a shared try that succeeds means the holders are shared.
// Each try that succeeds is undone at once. No pid is known.
func probe(h windows.Handle, off int64) (HolderInfo, error) {
	switch err := lockTryHandle(h, Exclusive, off); err {
	case nil:
		unlockHandle(h, off)
		return HolderInfo{}, nil
	case errWouldBlock:
	default:
		return HolderInfo{}, err
	}
	switch err := lockTryHandle(h, Shared, off); err {
	case nil:
		unlockHandle(h, off)
		return HolderInfo{Held: true, Mode: Shared}, nil
	case errWouldBlock:
		return HolderInfo{Held: true, Mode: Exclusive}, nil
	default:
		return HolderInfo{}, err
	}
}

func syncData(f *os.File) error { return f.Sync() }
