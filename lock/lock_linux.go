package lock

// Linux: open file description locks.
//
// F_OFD_SETLK locks belong to the open file description, not the process, so
// two Locks in one process (two opens) exclude each other, and closing one
// descriptor never drops another's lock. They conflict with the POSIX locks
// conda takes with lockf(2), in both directions.
//
// Waiting is F_OFD_SETLKW, in the kernel, woken when the holder releases.
// Go's signal handlers use SA_RESTART, so no signal can make that call return
// EINTR; to cancel a wait we redirect it instead. The waiter blocks on a
// duplicate of the lock's descriptor. On cancellation that descriptor number
// is pointed (dup3) at a private memfd that nobody else locks, and the
// waiter's thread is sent SIGURG: the kernel aborts the wait, the runtime
// handles the signal, and the restarted fcntl finds the memfd and returns at
// once. Whether the signal lands before, during or after the blocking call,
// the call ends on the memfd. If the real lock was granted in the same
// instant, it belongs to our own open file description, which we unlock
// before returning.

import (
	"bufio"
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/txnpair/txnpair/fsutil"
)

func flockT(mode Mode, off int64) unix.Flock_t {
	t := int16(unix.F_RDLCK)
	if mode == Exclusive {
		t = unix.F_WRLCK
	}
	return unix.Flock_t{Type: t, Whence: 0, Start: off, Len: 1}
}

// fcntlFlock runs an fcntl lock command on f's descriptor. It goes through
// SyscallConn rather than f.Fd, which would cost two more fcntl calls to put
// the descriptor in blocking mode.
func fcntlFlock(f *os.File, cmd int, lk *unix.Flock_t) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.FcntlFlock(fd, cmd, lk) }); err != nil {
		return err
	}
	return ferr
}

func lockTry(f *os.File, mode Mode, off int64) error {
	lk := flockT(mode, off)
	err := fcntlFlock(f, unix.F_OFD_SETLK, &lk)
	if err == unix.EAGAIN || err == unix.EACCES {
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
		lk := flockT(mode, off)
		for {
			if err := fcntlFlock(f, unix.F_OFD_SETLKW, &lk); err != unix.EINTR {
				return err
			}
		}
	}
	return waitCancelable(ctx, f, mode, off)
}

func setlkw(fd int, mode Mode, off int64) error {
	lk := flockT(mode, off)
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLKW, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}

// resignal is how long a cancelling Acquire waits for the interrupted waiter
// before sending SIGURG again. One signal is always enough by the argument
// above; the resend only guards against a signal the runtime swallowed.
const resignal = 50 * time.Millisecond

func waitCancelable(ctx context.Context, f *os.File, mode Mode, off int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	wfd := -1
	if cerr := rc.Control(func(fd uintptr) { wfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return err
	}
	// The caller's own thread waits in the kernel, so a release wakes it
	// directly; a function registered with context.AfterFunc, run only if
	// ctx ends first, cancels the wait. st.state moves from waiting to either
	// finished (set by the waiter when fcntl returns) or cancelling (set by
	// the canceller before it redirects wfd), under st.mu, so the canceller
	// never touches wfd or signals the thread once the waiter has moved on.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := &waitState{tid: unix.Gettid(), wfd: wfd, finished: make(chan struct{})}
	stop := context.AfterFunc(ctx, st.cancel)
	err = setlkw(wfd, mode, off)
	stop()
	st.mu.Lock()
	cancelled := st.state == cancelling
	st.state = finished
	st.mu.Unlock()
	close(st.finished)
	unix.Close(wfd)
	if cancelled {
		// The real lock may have been granted just before the redirect; it
		// belongs to f's open file description, which nobody else uses.
		unlock(f, off)
		return ctx.Err()
	}
	return err
}

const (
	waiting = iota
	cancelling
	finished
)

type waitState struct {
	mu       sync.Mutex
	state    int
	tid      int
	wfd      int
	finished chan struct{}
}

// cancel runs when ctx is done before the wait ends: it points wfd at the
// sink and interrupts the waiting thread until the waiter reports back.
func (st *waitState) cancel() {
	sink, err := cancelSink()
	st.mu.Lock()
	if st.state != waiting || err != nil {
		// Finished already, or no sink: then the wait runs until the
		// holder releases, and the waiter drops the lock it got.
		if st.state == waiting {
			st.state = cancelling
		}
		st.mu.Unlock()
		return
	}
	st.state = cancelling
	if err := unix.Dup3(sink, st.wfd, unix.O_CLOEXEC); err != nil {
		st.mu.Unlock()
		panic("lock: dup3 onto a descriptor we own failed: " + err.Error())
	}
	st.mu.Unlock()
	pid := unix.Getpid()
	for {
		st.mu.Lock()
		if st.state == finished {
			st.mu.Unlock()
			return
		}
		unix.Tgkill(pid, st.tid, unix.SIGURG)
		st.mu.Unlock()
		select {
		case <-st.finished:
			return
		case <-time.After(resignal):
		}
	}
}

var sink struct {
	once sync.Once
	fd   int
	err  error
}

// cancelSink returns a descriptor of a private, anonymous file that no other
// process can lock, for redirecting cancelled waits.
func cancelSink() (int, error) {
	sink.once.Do(func() {
		sink.fd, sink.err = unix.MemfdCreate("txnpair-lock-cancel", unix.MFD_CLOEXEC)
		if sink.err != nil {
			// Kernels before 3.17 lack memfd: an unlinked temp file serves.
			f, err := os.CreateTemp("", "txnpair-lock-cancel")
			if err != nil {
				return
			}
			os.Remove(f.Name())
			sink.fd, sink.err = int(f.Fd()), nil
			runtime.KeepAlive(f)
			sinkFile = f
		}
	})
	return sink.fd, sink.err
}

// sinkFile keeps the fallback sink open for the life of the process.
var sinkFile *os.File

func unlock(f *os.File, off int64) error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: off, Len: 1}
	return fcntlFlock(f, unix.F_OFD_SETLK, &lk)
}

// releaseFile drops the lock by closing f: an open file description lock
// ends when its last descriptor closes, and f's is the only one.
func releaseFile(f *os.File, off int64) error { return f.Close() }

func closeFile(f *os.File) error { return f.Close() }

func isUnsupported(err error) bool {
	// EINVAL: a kernel older than 3.15, without F_OFD_* commands.
	return errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.ENOSYS) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}

func queryHolder(path string, off int64) (HolderInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return HolderInfo{}, err
	}
	defer f.Close()
	return holderOf(f, off, true)
}

// holderOf asks the kernel which lock would conflict with an exclusive lock
// on byte off of f. F_OFD_GETLK reports a POSIX holder's pid and -1 for an
// open file description; with search set, the latter is looked up in /proc.
func holderOf(f *os.File, off int64, search bool) (HolderInfo, error) {
	lk := flockT(Exclusive, off)
	if err := fcntlFlock(f, unix.F_OFD_GETLK, &lk); err != nil {
		return HolderInfo{}, err
	}
	if lk.Type == unix.F_UNLCK {
		return HolderInfo{}, nil
	}
	h := HolderInfo{Held: true, Mode: Shared}
	if lk.Type == unix.F_WRLCK {
		h.Mode = Exclusive
	}
	if lk.Pid > 0 {
		h.PID = int(lk.Pid)
	} else if search {
		if id, err := fsutil.FileIDOf(f); err == nil {
			h.PID = findOFDHolder(id, off)
		}
	}
	if h.PID > 0 {
		h.Process = processName(h.PID)
	}
	return h, nil
}

// findOFDHolder searches /proc/*/fdinfo for a descriptor of the file id
// whose open file description holds a lock covering off, and returns its
// process's pid, or 0.
func findOFDHolder(id fsutil.FileID, off int64) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := "/proc/" + p.Name() + "/fd/"
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			fid, err := fsutil.PathID(fdDir + fd.Name())
			if err != nil || fid != id {
				continue
			}
			if fdinfoLocks(pid, fd.Name(), off) {
				return pid
			}
		}
	}
	return 0
}

// fdinfoLocks reports whether /proc/pid/fdinfo/fd lists an OFD lock that
// covers off. The lines look like
//
//	lock:	1: OFDLCK  ADVISORY  WRITE -1 fe:00:9978221 21 21
func fdinfoLocks(pid int, fd string, off int64) bool {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + fd)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line, ok := strings.CutPrefix(s.Text(), "lock:")
		if !ok {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 8 || fields[1] != "OFDLCK" {
			continue
		}
		start, err1 := strconv.ParseInt(fields[6], 10, 64)
		end, err2 := strconv.ParseInt(fields[7], 10, 64)
		if fields[7] == "EOF" {
			end, err2 = 1<<63-1, nil
		}
		if err1 == nil && err2 == nil && start <= off && off <= end {
			return true
		}
	}
	return false
}

func processName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// openNonblock keeps an open of a FIFO from waiting for a writer; the file is
// then refused as not regular. It has no effect on regular files.
const openNonblock = unix.O_NONBLOCK

func reserve(f *os.File, n int64) error {
	if n <= 0 {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Fallocate(int(fd), unix.FALLOC_FL_KEEP_SIZE, 0, n)
			if ferr != unix.EINTR {
				break
			}
		}
	}); err != nil {
		return err
	}
	if ferr == unix.EOPNOTSUPP || ferr == unix.ENOSYS {
		return nil // the filesystem cannot reserve; the write will tell
	}
	if ferr != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: ferr}
	}
	return nil
}

// syncData is fdatasync: the content and size of a file rewritten in place,
// without a journal commit for its timestamps.
func syncData(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				break
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
