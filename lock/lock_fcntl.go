//go:build unix && !linux

package lock

// Unix systems other than Linux: POSIX record locks (F_SETLK) and a table.
//
// A POSIX lock belongs to the process, so the kernel cannot make two
// goroutines exclude each other, and closing any descriptor of a file drops
// every lock the process holds on it. The table below, keyed by device and
// inode, therefore records what this process holds on each file:
//
//   - conflicts between Locks of this process are decided here, and waits
//     for them are channel waits that a context can cancel;
//   - the kernel holds one lock for the whole process: taken by the first
//     holder, dropped when the last one releases;
//   - a descriptor of a file that is still locked is not closed but parked
//     until the last holder releases, since closing it would drop the lock.
//
// A wait for another process goes to the kernel (F_SETLKW) in a goroutine,
// one at most per file. If its context ends first, Acquire returns and the
// goroutine stays behind as the file's pending waiter; when the kernel grants
// the lock it drops it at once. Other Acquires in this process wait behind it
// in the table, so abandoned waits cost at most one thread per file.

import (
	"context"
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/txnpair/txnpair/fsutil"
)

type inode struct {
	readers int           // Shared holders in this process
	writer  bool          // an Exclusive holder in this process
	pending bool          // a kernel wait is under way
	kernel  bool          // the kernel holds this process's lock
	parked  []*os.File    // descriptors to close once nothing is held
	changed chan struct{} // closed and replaced at every release
}

var table = struct {
	sync.Mutex
	m map[fsutil.FileID]*inode
}{m: make(map[fsutil.FileID]*inode)}

// entry returns the table's record for id, creating it. table must be locked.
func entry(id fsutil.FileID) *inode {
	ino := table.m[id]
	if ino == nil {
		ino = &inode{changed: make(chan struct{})}
		table.m[id] = ino
	}
	return ino
}

func (ino *inode) conflicts(mode Mode) bool {
	return ino.pending || ino.writer || (mode == Exclusive && ino.readers > 0)
}

func (ino *inode) take(mode Mode) {
	if mode == Exclusive {
		ino.writer = true
	} else {
		ino.readers++
	}
	ino.kernel = true
}

// settle broadcasts a change and, when nothing is held or awaited any more,
// drops the kernel lock, closes parked descriptors and forgets the file.
// table must be locked.
func settle(id fsutil.FileID, ino *inode, f *os.File, off int64) {
	close(ino.changed)
	ino.changed = make(chan struct{})
	if ino.readers > 0 || ino.writer || ino.pending {
		return
	}
	if ino.kernel {
		setlk(f, unix.F_UNLCK, off, unix.F_SETLK)
		ino.kernel = false
	}
	for _, p := range ino.parked {
		p.Close()
	}
	delete(table.m, id)
}

func setlk(f *os.File, typ int16, off int64, cmd int) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	for {
		err := unix.FcntlFlock(f.Fd(), cmd, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}

func lockType(mode Mode) int16 {
	if mode == Exclusive {
		return unix.F_WRLCK
	}
	return unix.F_RDLCK
}

func lockTry(f *os.File, mode Mode, off int64) error {
	id, err := fsutil.FileIDOf(f)
	if err != nil {
		return err
	}
	table.Lock()
	defer table.Unlock()
	ino := entry(id)
	if ino.conflicts(mode) {
		return errWouldBlock
	}
	if !ino.kernel {
		err := setlk(f, lockType(mode), off, unix.F_SETLK)
		if err == unix.EAGAIN || err == unix.EACCES {
			settle(id, ino, f, off)
			return errWouldBlock
		}
		if err != nil {
			settle(id, ino, f, off)
			return err
		}
	}
	ino.take(mode)
	return nil
}

func lockWait(ctx context.Context, f *os.File, mode Mode, off int64) error {
	id, err := fsutil.FileIDOf(f)
	if err != nil {
		return err
	}
	for {
		table.Lock()
		ino := entry(id)
		if ino.conflicts(mode) {
			ch := ino.changed
			table.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ino.kernel {
			ino.take(mode) // another Shared holder here: the kernel lock covers us
			table.Unlock()
			return nil
		}
		err := setlk(f, lockType(mode), off, unix.F_SETLK)
		if err == nil {
			ino.take(mode)
			table.Unlock()
			return nil
		}
		if err != unix.EAGAIN && err != unix.EACCES {
			settle(id, ino, f, off)
			table.Unlock()
			return err
		}
		ino.pending = true
		table.Unlock()
		return kernelWait(ctx, id, ino, f, mode, off)
	}
}

// kernelWait waits in the kernel for another process to release the byte.
func kernelWait(ctx context.Context, id fsutil.FileID, ino *inode, f *os.File, mode Mode, off int64) error {
	done := make(chan error, 1)
	abandoned := make(chan struct{})
	go func() {
		err := setlk(f, lockType(mode), off, unix.F_SETLKW)
		table.Lock()
		defer table.Unlock()
		ino.pending = false
		select {
		case <-abandoned:
			if err == nil {
				ino.kernel = true // settle drops it
			}
			settle(id, ino, f, off)
		default:
			if err == nil {
				ino.take(mode)
			} else {
				settle(id, ino, f, off)
			}
			done <- err
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	table.Lock()
	select {
	case err := <-done: // granted (or failed) while we took the table lock
		table.Unlock()
		if err == nil {
			unlock(f, off)
		}
		return ctx.Err()
	default:
		close(abandoned)
		table.Unlock()
		return ctx.Err()
	}
}

func unlock(f *os.File, off int64) error {
	id, err := fsutil.FileIDOf(f)
	if err != nil {
		return err
	}
	table.Lock()
	defer table.Unlock()
	ino := table.m[id]
	if ino == nil {
		return nil
	}
	switch {
	case ino.writer:
		ino.writer = false
	case ino.readers > 0:
		ino.readers--
	default:
		return nil
	}
	settle(id, ino, f, off)
	return nil
}

// closeFile closes f, or parks it while this process holds locks on its file.
func closeFile(f *os.File) error {
	id, err := fsutil.FileIDOf(f)
	if err != nil {
		return f.Close()
	}
	table.Lock()
	defer table.Unlock()
	if ino := table.m[id]; ino != nil {
		ino.parked = append(ino.parked, f)
		return nil
	}
	return f.Close()
}

func isUnsupported(err error) bool {
	return errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.ENOSYS) ||
		errors.Is(err, unix.EOPNOTSUPP)
}

func queryHolder(path string, off int64) (HolderInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return HolderInfo{}, err
	}
	defer closeFile(f)
	return holderOf(f, off, true)
}

// holderOf reports a holder in this process from the table, else asks the
// kernel (F_GETLK), which reports other processes' locks with their pids.
func holderOf(f *os.File, off int64, search bool) (HolderInfo, error) {
	id, err := fsutil.FileIDOf(f)
	if err != nil {
		return HolderInfo{}, err
	}
	table.Lock()
	if ino := table.m[id]; ino != nil && (ino.writer || ino.readers > 0) {
		h := HolderInfo{Held: true, Mode: Shared, PID: os.Getpid()}
		if ino.writer {
			h.Mode = Exclusive
		}
		table.Unlock()
		return h, nil
	}
	table.Unlock()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return HolderInfo{}, err
	}
	if lk.Type == unix.F_UNLCK {
		return HolderInfo{}, nil
	}
	h := HolderInfo{Held: true, Mode: Shared, PID: int(lk.Pid)}
	if lk.Type == unix.F_WRLCK {
		h.Mode = Exclusive
	}
	return h, nil
}

// releaseFile drops the lock on f and closes it.
func releaseFile(f *os.File, off int64) error {
	return errors.Join(unlock(f, off), closeFile(f))
}

// openNonblock keeps an open of a FIFO from waiting for a writer; the file is
// then refused as not regular. It has no effect on regular files.
const openNonblock = unix.O_NONBLOCK

func reserve(f *os.File, n int64) error { return nil }

func syncData(f *os.File) error { return f.Sync() }
