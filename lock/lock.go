// Package lock takes byte-range locks on one byte of a file, compatible with
// the lock conda takes on its repodata cache: an fcntl record lock on byte 21
// of the metadata file on Unix, LockFileEx on byte 21 on Windows.
//
// If Acquire returns a Lock in mode Exclusive, then until Release no other
// Lock of this package, in this process or another, and no process following
// conda's protocol (fcntl.lockf(fd, LOCK_EX, 1, 21) on Unix, msvcrt.locking
// on Windows) holds the same byte of the same file. Shared locks exclude only
// exclusive ones.
//
// The guarantee has limits:
//
//   - The lock is advisory on Unix: it binds only programs that take it.
//     On Windows it is mandatory: while it is held, other handles cannot read
//     or write the locked byte.
//   - flock(2)-based locks (Go's lockedfile, gofrs/flock, rattler) are a
//     different kind of lock on Linux and do not exclude this one.
//   - On network filesystems the lock is only as good as the server's lock
//     manager; where the system reports that byte-range locks are missing
//     (NFS mounted with nolock, some FUSE and Lustre mounts) Acquire fails
//     with an error that satisfies errors.Is(err, ErrUnsupported).
//   - On Linux the lock is an open file description lock (F_OFD_SETLK), which
//     conflicts with conda's POSIX locks, and Locks of one process exclude each
//     other. On other Unix systems it is a POSIX lock (F_SETLK); since the
//     kernel cannot tell goroutines apart there, the package keeps a table of
//     the locks this process holds, keyed by device and inode. On those
//     systems closing any descriptor of a locked file drops the process's
//     locks, so programs must not open and close the locked file themselves
//     while holding a Lock; use the Lock's ReadAll and WriteAll instead.
//
// Waiting does not poll: Acquire sleeps in the kernel until the byte is free
// or its context is done. When the context ends first, Acquire returns
// promptly and no lock is left behind. (On Unix systems other than Linux, and
// on Windows where CancelSynchronousIo cannot end the wait (always under Wine,
// rarely on Windows itself), a cancelled wait may take and at once drop the
// lock when the holder releases it.) On Linux a cancelled wait is interrupted with SIGURG, the signal the Go
// runtime already uses for preemption; programs that subscribe to SIGURG with
// signal.Notify see these too.
package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/txnpair/txnpair/fsutil"
)

// DefaultOffset is the byte conda locks: LOCK_BYTE in conda/gateways/disk/lock.py.
const DefaultOffset int64 = 21

// Mode is the kind of lock: Shared or Exclusive.
type Mode int

const (
	// Shared locks coexist with other shared locks and exclude exclusive ones.
	Shared Mode = iota + 1
	// Exclusive locks exclude every other lock on the byte.
	Exclusive
)

func (m Mode) String() string {
	switch m {
	case Shared:
		return "shared"
	case Exclusive:
		return "exclusive"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Errors returned by this package, wrapped in an *Error that names the file,
// the byte and, where it is known, the holder.
var (
	// ErrLocked is returned by TryAcquire when another lock holds the byte.
	ErrLocked = errors.New("byte is locked")

	// ErrUnsupported is returned when the system or filesystem has no
	// byte-range locks: ENOLCK, ENOSYS or EOPNOTSUPP from the kernel (the
	// *Error then names the filesystem type and a remedy), or a GOOS this
	// package does not support. It also satisfies
	// errors.Is(err, errors.ErrUnsupported).
	ErrUnsupported error = unsupportedError{}

	// ErrReleased is returned by the methods of a Lock after Release,
	// including a second Release, which is otherwise harmless. It satisfies
	// errors.Is(err, fs.ErrClosed).
	ErrReleased = fmt.Errorf("lock already released: %w", fs.ErrClosed)

	// ErrNotExclusive is returned by WriteAll on a Shared lock.
	ErrNotExclusive = errors.New("lock is not exclusive")

	// ErrNotRegular is returned when the path names a directory or another
	// file that is not a regular file.
	ErrNotRegular = errors.New("not a regular file")

	// ErrStale is returned by Verify when the path no longer names the
	// locked file: a process that ignores the lock removed or replaced it.
	ErrStale = errors.New("the path no longer names the locked file")
)

type unsupportedError struct{}

func (unsupportedError) Error() string        { return "byte-range locks are not supported here" }
func (unsupportedError) Is(target error) bool { return target == errors.ErrUnsupported }

// errWouldBlock is returned by the per-OS lockTry when the byte is held.
var errWouldBlock = errors.New("would block")

// An Option configures Acquire, TryAcquire and Holder.
type Option interface{ apply(*config) }

type config struct {
	offset int64
	perm   fs.FileMode
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithOffset locks the byte at off instead of DefaultOffset.
func WithOffset(off int64) Option { return optionFunc(func(c *config) { c.offset = off }) }

// WithPerm sets the permissions (before the umask) of the file when Acquire
// creates it. The default is 0o666. Existing files keep their mode.
func WithPerm(perm fs.FileMode) Option { return optionFunc(func(c *config) { c.perm = perm }) }

func newConfig(opts []Option) config {
	c := config{offset: DefaultOffset, perm: 0o666}
	for _, o := range opts {
		o.apply(&c)
	}
	return c
}

// HolderInfo describes who holds a byte, as far as the system tells.
type HolderInfo struct {
	Held    bool   // whether any lock holds the byte
	Mode    Mode   // Shared or Exclusive, when Held
	PID     int    // the holder's process id, or 0 where the system does not say
	Process string // the holder's command name, where the system tells
}

func (h HolderInfo) String() string {
	if !h.Held {
		return "not held"
	}
	var b strings.Builder
	if h.PID > 0 {
		b.WriteString("pid ")
		b.WriteString(strconv.Itoa(h.PID))
		b.WriteString(" (")
		if h.Process != "" {
			b.WriteString(h.Process)
			b.WriteString(", ")
		}
	} else {
		b.WriteString("an unknown process (")
	}
	b.WriteString(h.Mode.String())
	b.WriteString(")")
	return b.String()
}

// Holder reports who holds the lock byte of the file at path, without taking
// it. The answer is a snapshot: it may be stale by the time it is read. A
// missing file is not held.
//
// On Linux the pid of a conda (POSIX) holder comes from the kernel; the pid of
// an open-file-description holder, such as another program using this
// package, is found by searching /proc for the descriptor that holds it, which
// finds only processes this one may inspect. On Windows the mode is found by
// probing, and no pid is known.
func Holder(path string, opts ...Option) (HolderInfo, error) {
	c := newConfig(opts)
	h, err := queryHolder(path, c.offset)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return HolderInfo{}, nil
		}
		return HolderInfo{}, &Error{Op: "holder", Path: path, Offset: c.offset, Err: err}
	}
	return h, nil
}

// Error is the error type of this package. It carries what a person needs to
// act on a failure: the file, the byte, the holder and how long the call
// waited. It unwraps to one of the sentinel errors above, a context error, or
// the system's error.
type Error struct {
	Op     string        // "acquire", "tryacquire", "release", "holder", "read", "write", "sync"
	Path   string        // the locked file
	Offset int64         // the locked byte
	Mode   Mode          // the mode asked for, if any
	Holder *HolderInfo   // who holds the byte, where known
	Waited time.Duration // how long Acquire waited, if it did
	FSType string        // the filesystem's type, for ErrUnsupported
	Hint   string        // what to do about it, for ErrUnsupported
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("lock ")
	b.WriteString(e.Path)
	b.WriteString(" byte ")
	b.WriteString(strconv.FormatInt(e.Offset, 10))
	if e.Holder != nil && e.Holder.Held {
		b.WriteString(": held by ")
		b.WriteString(e.Holder.String())
	}
	if e.Waited > 0 {
		b.WriteString(" (waited ")
		b.WriteString(e.Waited.Round(time.Millisecond).String())
		b.WriteString(")")
	}
	if e.FSType != "" {
		b.WriteString(": on ")
		b.WriteString(e.FSType)
	}
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Lock is a held byte-range lock. Its methods are safe for concurrent use.
// The file behind it is never exposed: read and write it with ReadAll and
// WriteAll, which go through the locked handle (on Windows, where locks are
// mandatory, no other handle could).
type Lock struct {
	mu   sync.Mutex
	f    *os.File // nil once released
	id   fsutil.FileID
	path string
	off  int64
	mode Mode
}

// Acquire opens the file at path, creating it if it does not exist (never
// truncating it), and locks its lock byte in mode, waiting until the lock is
// granted or ctx is done.
//
// If the file is replaced or removed while Acquire waits, Acquire drops the
// lock it got on the old file and locks the file that path names now.
//
// When ctx ends first, the error wraps ctx.Err() and says who holds the byte
// and how long Acquire waited; no lock is left behind.
func Acquire(ctx context.Context, path string, mode Mode, opts ...Option) (*Lock, error) {
	return acquire(ctx, "acquire", path, mode, true, opts)
}

// TryAcquire is like Acquire but does not wait: when the byte is held it
// returns an error satisfying errors.Is(err, ErrLocked), naming the holder's
// pid where the kernel reports it cheaply.
func TryAcquire(path string, mode Mode, opts ...Option) (*Lock, error) {
	return acquire(context.Background(), "tryacquire", path, mode, false, opts)
}

func acquire(ctx context.Context, op, path string, mode Mode, wait bool, opts []Option) (*Lock, error) {
	c := newConfig(opts)
	e := &Error{Op: op, Path: path, Offset: c.offset, Mode: mode}
	switch {
	case mode != Shared && mode != Exclusive:
		e.Err = fmt.Errorf("invalid mode %d", int(mode))
		return nil, e
	case c.offset < 0:
		e.Err = errors.New("negative offset")
		return nil, e
	case path == "":
		e.Err = &fs.PathError{Op: "open", Path: path, Err: fs.ErrInvalid}
		return nil, e
	}
	if err := ctx.Err(); err != nil {
		e.Err = err
		return nil, e
	}
	start := time.Now()
	for {
		f, id, err := openFile(path, mode, c.perm)
		if err != nil {
			e.Err = err
			return nil, e
		}
		if wait {
			err = lockWait(ctx, f, mode, c.offset)
		} else {
			err = lockTry(f, mode, c.offset)
		}
		if err != nil {
			return nil, failed(e, f, err, start)
		}
		same, err := stillAt(id, path)
		if err == nil && same {
			return &Lock{f: f, id: id, path: path, off: c.offset, mode: mode}, nil
		}
		unlock(f, c.offset)
		closeFile(f)
		if err != nil {
			e.Err = err
			return nil, e
		}
		// The file was replaced or removed while we waited for it. Lock
		// the file path names now.
	}
}

// openFile opens path for a lock in mode, checks that it is a regular file
// (a read-only open of a directory would succeed) and returns its identity.
func openFile(path string, mode Mode, perm fs.FileMode) (*os.File, fsutil.FileID, error) {
	flag := os.O_RDWR | os.O_CREATE | openNonblock
	if mode == Shared {
		flag = os.O_RDONLY | os.O_CREATE | openNonblock
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		// Opening a directory for writing, or with O_CREATE, fails
		// before the check below could run.
		if fi, serr := os.Stat(path); serr == nil && !fi.Mode().IsRegular() {
			err = &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
		}
		return nil, fsutil.FileID{}, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &fs.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	var id fsutil.FileID
	if err == nil {
		id, err = fsutil.InfoID(f, fi)
	}
	if err != nil {
		f.Close()
		return nil, fsutil.FileID{}, err
	}
	return f, id, nil
}

// stillAt reports whether path still names the file whose identity is id.
func stillAt(id fsutil.FileID, path string) (bool, error) {
	pid, err := fsutil.PathID(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil && pid == id, err
}

// failed fills in e for a failed lock attempt on f, then closes f.
func failed(e *Error, f *os.File, err error, start time.Time) error {
	switch {
	case errors.Is(err, errWouldBlock):
		e.Err = ErrLocked
		if h, herr := holderOf(f, e.Offset, false); herr == nil && h.Held {
			e.Holder = &h
		}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.Err = err
		e.Waited = time.Since(start)
		if h, herr := holderOf(f, e.Offset, true); herr == nil && h.Held {
			e.Holder = &h
		}
	case isUnsupported(err):
		e.FSType, _ = fsutil.FSType(e.Path)
		e.Hint = remedy(e.FSType)
		e.Err = fmt.Errorf("%w: %w", ErrUnsupported, err)
	default:
		e.Err = err
	}
	closeFile(f)
	return e
}

// remedy says what a user can do when a filesystem has no byte-range locks.
func remedy(fstype string) string {
	switch fstype {
	case "nfs":
		return "NFS needs a working lock manager: NFSv4, or NFSv3 with rpc.statd and lockd, not mounted with nolock; or keep the cache on a local disk"
	case "lustre":
		return "mount Lustre with -o flock (or -o localflock for node-local locks), or keep the cache on a local disk"
	case "cifs", "smb", "smb2":
		return "mount the share without nobrl, or keep the cache on a local disk"
	case "fuse":
		return "this FUSE filesystem does not implement POSIX locks; keep the cache on a local disk"
	}
	return "keep the file on a local filesystem that supports byte-range locks"
}

// Verify returns nil if the path still names the locked file, and an error
// satisfying errors.Is(err, ErrStale) if it was removed (then also
// fs.ErrNotExist) or replaced since Acquire. Acquire itself retries in that case; Verify is for holders about
// to make changes that matter only if others can find them: a lock on an
// orphaned file no longer excludes processes that open the path.
func (l *Lock) Verify() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.file("verify"); err != nil {
		return err
	}
	pid, err := fsutil.PathID(l.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return l.errorf("verify", fmt.Errorf("%w: %w", ErrStale, err))
	case err != nil:
		return l.errorf("verify", err)
	case pid != l.id:
		return l.errorf("verify", ErrStale)
	}
	return nil
}

// Path returns the path the lock was acquired on.
func (l *Lock) Path() string { return l.path }

// Mode returns the lock's mode.
func (l *Lock) Mode() Mode { return l.mode }

// Offset returns the locked byte's offset.
func (l *Lock) Offset() int64 { return l.off }

func (l *Lock) errorf(op string, err error) error {
	return &Error{Op: op, Path: l.path, Offset: l.off, Mode: l.mode, Err: err}
}

// file returns the locked file or ErrReleased. l.mu must be held.
func (l *Lock) file(op string) (*os.File, error) {
	if l.f == nil {
		return nil, l.errorf(op, ErrReleased)
	}
	return l.f, nil
}

// Release drops the lock and closes the file. Writes made through WriteAll
// are complete before the byte is released (though durable only after Sync).
// A second Release returns an error satisfying errors.Is(err, ErrReleased)
// and does nothing else.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.file("release")
	if err != nil {
		return err
	}
	l.f = nil
	if err := releaseFile(f, l.off); err != nil {
		return l.errorf("release", err)
	}
	return nil
}

// ReadAll returns the whole content of the locked file, read through the
// locked handle.
func (l *Lock) ReadAll() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.file("read")
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, l.errorf("read", err)
	}
	// The lock keeps writers that honour it out, so the size is stable: one
	// read of that many bytes is the whole file.
	buf := make([]byte, fi.Size())
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return nil, l.errorf("read", err)
	}
	return buf[:n], nil
}

// WriteAll replaces the content of the locked file with p, in place through
// the locked handle: the file keeps its inode, so other processes waiting on
// the lock wait on the right file. It writes p from offset 0, then cuts the
// file to len(p), so a reader that skips the lock never sees it empty. The
// write is not atomic against crashes and not durable until Sync; txn builds
// both properties on top of it. WriteAll needs an Exclusive lock.
func (l *Lock) WriteAll(p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.file("write")
	if err != nil {
		return err
	}
	if l.mode != Exclusive {
		return l.errorf("write", ErrNotExclusive)
	}
	if _, err := f.WriteAt(p, 0); err != nil {
		return l.errorf("write", err)
	}
	if err := f.Truncate(int64(len(p))); err != nil {
		return l.errorf("write", err)
	}
	return nil
}

// Reserve makes room for the file to hold n bytes without changing its size
// or content, so that a later WriteAll of up to n bytes cannot fail for lack
// of space. It needs an Exclusive lock. Where the system cannot promise
// that (fallocate with FALLOC_FL_KEEP_SIZE on Linux is used; other systems,
// and filesystems without fallocate, do nothing), it returns nil.
func (l *Lock) Reserve(n int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.file("reserve")
	if err != nil {
		return err
	}
	if l.mode != Exclusive {
		return l.errorf("reserve", ErrNotExclusive)
	}
	if err := reserve(f, n); err != nil {
		return l.errorf("reserve", err)
	}
	return nil
}

// Sync commits the locked file's content and size to stable storage, though
// not necessarily its timestamps (fdatasync on Linux, fsync elsewhere). A
// failed Sync must not be retried in the hope of success: the kernel may
// have dropped the unwritten pages.
func (l *Lock) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.file("sync")
	if err != nil {
		return err
	}
	if err := syncData(f); err != nil {
		return l.errorf("sync", err)
	}
	return nil
}

// Stat returns the FileInfo of the locked file.
func (l *Lock) Stat() (fs.FileInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.file("stat")
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, l.errorf("stat", err)
	}
	return fi, nil
}

// FileID returns the identity (device and inode) of the locked file.
func (l *Lock) FileID() (fsutil.FileID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.file("stat")
	if err != nil {
		return fsutil.FileID{}, err
	}
	return fsutil.FileIDOf(f)
}
