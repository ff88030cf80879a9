package lock_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/lock"
)

const (
	// cancelAfter is the deadline given to Acquires that are meant to
	// time out while another lock holds the byte.
	cancelAfter = 20 * time.Millisecond

	// stillWaiting is how long a test watches a blocked Acquire to see that
	// it does not return while the byte is held.
	stillWaiting = 20 * time.Millisecond
)

func tempPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(scratchDir(t), "497deca9.info.json")
}

func mustAcquire(t testing.TB, path string, mode lock.Mode, opts ...lock.Option) *lock.Lock {
	t.Helper()
	l, err := lock.TryAcquire(path, mode, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { l.Release() })
	return l
}

// pidsKnown reports whether Holder and errors name holders' pids here.
func pidsKnown() bool { return runtime.GOOS != "windows" }

func TestExclusiveExcludesGoroutines(t *testing.T) {
	const goroutines, rounds = 8, 100
	path := tempPath(t)
	var (
		inside  atomic.Int32 // 1 while some goroutine holds the lock
		counter int          // deliberately not atomic
		wg      sync.WaitGroup
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				l, err := lock.Acquire(context.Background(), path, lock.Exclusive)
				if !assert.NoError(t, err) {
					return
				}
				// The atomics also tell the race detector what the
				// kernel lock ordered, so that -race checks counter.
				assert.True(t, inside.CompareAndSwap(0, 1), "goroutine %d entered while another held the lock", g)
				c := counter
				runtime.Gosched()
				counter = c + 1
				inside.Store(0)
				assert.NoError(t, l.Release())
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, goroutines*rounds, counter)
}

func TestSharedExcludesOnlyExclusive(t *testing.T) {
	const goroutines, rounds = 8, 100
	path := tempPath(t)
	var (
		readers atomic.Int32
		writers atomic.Int32
		wg      sync.WaitGroup
	)
	for g := range goroutines {
		mode := lock.Shared
		if g%2 == 0 {
			mode = lock.Exclusive
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				l, err := lock.Acquire(context.Background(), path, mode)
				if !assert.NoError(t, err) {
					return
				}
				if mode == lock.Exclusive {
					assert.Equal(t, int32(1), writers.Add(1), "two exclusive holders")
					assert.Zero(t, readers.Load(), "exclusive holder beside a shared one")
					runtime.Gosched()
					writers.Add(-1)
				} else {
					readers.Add(1)
					assert.Zero(t, writers.Load(), "shared holder beside an exclusive one")
					runtime.Gosched()
					readers.Add(-1)
				}
				assert.NoError(t, l.Release())
			}
		}()
	}
	wg.Wait()
}

func TestSharedLocksCoexist(t *testing.T) {
	path := tempPath(t)
	mustAcquire(t, path, lock.Shared)
	l, err := lock.TryAcquire(path, lock.Shared)
	require.NoError(t, err, "a second shared lock beside a shared one")
	assert.NoError(t, l.Release())
}

func TestLockConflicts(t *testing.T) {
	for _, tc := range []struct{ held, want lock.Mode }{
		{lock.Shared, lock.Exclusive},
		{lock.Exclusive, lock.Shared},
		{lock.Exclusive, lock.Exclusive},
	} {
		t.Run(tc.held.String()+"_blocks_"+tc.want.String(), func(t *testing.T) {
			path := tempPath(t)
			mustAcquire(t, path, tc.held)
			l, err := lock.TryAcquire(path, tc.want)
			require.Error(t, err)
			assert.Nil(t, l)
			assert.ErrorIs(t, err, lock.ErrLocked)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), "byte 21")
			assert.Contains(t, err.Error(), "held by")
			var le *lock.Error
			require.ErrorAs(t, err, &le)
			assert.Equal(t, "tryacquire", le.Op)
			assert.Equal(t, tc.want, le.Mode)
			require.NotNil(t, le.Holder)
			assert.Equal(t, tc.held, le.Holder.Mode)
		})
	}
}

func TestAcquireWaitsUntilRelease(t *testing.T) {
	for _, withCtx := range []bool{false, true} {
		t.Run("cancelable="+strconv.FormatBool(withCtx), func(t *testing.T) {
			path := tempPath(t)
			holder, err := lock.TryAcquire(path, lock.Exclusive)
			require.NoError(t, err)
			ctx := context.Background()
			if withCtx {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
			}
			woke := acquireBehind(t, ctx, path)
			require.NoError(t, holder.Release())
			woke()
		})
	}
}

// acquireBehind starts an exclusive Acquire of path, which another lock
// holds, checks that it waits in the kernel and keeps waiting, and returns a
// function that checks it then wakes and gets the lock (call it after
// releasing the holder).
func acquireBehind(t *testing.T, ctx context.Context, path string) (woke func()) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		l, err := lock.Acquire(ctx, path, lock.Exclusive)
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	waitUntilBlocked(t, path)
	select {
	case err := <-got:
		require.FailNow(t, "Acquire returned while the byte was held", "err: %v", err)
	case <-time.After(stillWaiting):
	}
	return func() {
		t.Helper()
		select {
		case err := <-got:
			assert.NoError(t, err)
		case <-time.After(replyTimeout):
			require.FailNow(t, "Acquire did not wake after the holder released")
		}
	}
}

func TestAcquireCancelledNamesHolderAndWait(t *testing.T) {
	path := tempPath(t)
	mustAcquire(t, path, lock.Exclusive)

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), cancelAfter)
		defer cancel()
		l, err := lock.Acquire(ctx, path, lock.Exclusive)
		require.Error(t, err)
		assert.Nil(t, l)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		checkWaitError(t, err, path, os.Getpid())
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			waitUntilBlocked(t, path)
			cancel()
		}()
		l, err := lock.Acquire(ctx, path, lock.Shared)
		require.Error(t, err)
		assert.Nil(t, l)
		assert.ErrorIs(t, err, context.Canceled)
		checkWaitError(t, err, path, os.Getpid())
	})
	t.Run("already_done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := lock.Acquire(ctx, path, lock.Exclusive)
		assert.ErrorIs(t, err, context.Canceled)
	})
}

// checkWaitError checks that err, from an Acquire that gave up waiting,
// tells the path, the byte, the holder and how long it waited.
func checkWaitError(t *testing.T, err error, path string, holderPID int) {
	t.Helper()
	msg := err.Error()
	assert.Contains(t, msg, path)
	assert.Contains(t, msg, "byte 21")
	assert.Contains(t, msg, "held by")
	assert.Contains(t, msg, "(waited ")
	var le *lock.Error
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "acquire", le.Op)
	assert.Positive(t, le.Waited)
	require.NotNil(t, le.Holder)
	assert.True(t, le.Holder.Held)
	if pidsKnown() {
		assert.Equal(t, holderPID, le.Holder.PID)
		assert.Contains(t, msg, "pid "+strconv.Itoa(holderPID))
	}
}

// TestCancelledAcquireLeavesNoLock cancels many waits in this process, then
// checks from another process that nothing stayed locked.
func TestCancelledAcquireLeavesNoLock(t *testing.T) {
	const cancellations = 50
	path := tempPath(t)
	prober := startServer(t, path)
	holder, err := lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err)
	for i := range cancellations {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*time.Millisecond)
		mode := lock.Exclusive
		if i%2 == 1 {
			mode = lock.Shared
		}
		_, err := lock.Acquire(ctx, path, mode)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "attempt %d", i)
	}
	require.NoError(t, holder.Release())
	skipUnderWine(t, wineNoCancel)
	probeFree(t, prober)
}

// probeFree checks, several times over a while, that the prober process
// can take the byte: a lock granted late to a cancelled wait would show.
func probeFree(t *testing.T, prober *lockServer) {
	t.Helper()
	const probes, gap = 5, 5 * time.Millisecond
	for i := range probes {
		assert.Equal(t, "ok", prober.do("try x"), "probe %d", i)
		time.Sleep(gap)
	}
}

// TestCancelNearReleaseLeavesNoLock cancels waits at moments scattered
// around the holder's release, where a grant and a cancellation race.
func TestCancelNearReleaseLeavesNoLock(t *testing.T) {
	const rounds, spread = 40, 2 * time.Millisecond
	skipUnderWine(t, wineNoCancel)
	path := tempPath(t)
	prober := startServer(t, path)
	acquired := 0
	for i := range rounds {
		holder, err := lock.TryAcquire(path, lock.Exclusive)
		require.NoError(t, err, "round %d", i)
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan error, 1)
		go func() {
			l, err := lock.Acquire(ctx, path, lock.Exclusive)
			if err == nil {
				acquired++
				err = l.Release()
			}
			got <- err
		}()
		// Spread the release and the cancellation over a few
		// milliseconds, in both orders.
		d := time.Duration(i) * spread / rounds
		if i%2 == 0 {
			time.Sleep(d)
			require.NoError(t, holder.Release())
			cancel()
		} else {
			time.Sleep(spread - d)
			cancel()
			require.NoError(t, holder.Release())
		}
		if err := <-got; err != nil {
			require.ErrorIs(t, err, context.Canceled, "round %d", i)
		}
		require.Equal(t, "ok", prober.do("try x"), "round %d: a lock was left behind", i)
	}
	t.Logf("%d of %d waits got the lock before their cancellation", acquired, rounds)
	probeFree(t, prober)
}

func TestAcquireFollowsReplacedFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows refuses to replace a file that is open without FILE_SHARE_DELETE (ERROR_ACCESS_DENIED), as Go opens files, so a locked or awaited file cannot be replaced there")
	}
	dir := scratchDir(t)
	path := filepath.Join(dir, "meta.json")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o666))
	oldLink := filepath.Join(dir, "old-link")
	require.NoError(t, os.Link(path, oldLink))

	holder, err := lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err)
	got := make(chan *lock.Lock, 1)
	go func() {
		l, err := lock.Acquire(context.Background(), path, lock.Exclusive)
		assert.NoError(t, err)
		got <- l
	}()
	waitUntilBlocked(t, path)

	tmp := filepath.Join(dir, "meta.json.tmp")
	require.NoError(t, os.WriteFile(tmp, []byte("new"), 0o666))
	require.NoError(t, os.Rename(tmp, path))
	require.NoError(t, holder.Release())

	var l *lock.Lock
	select {
	case l = <-got:
	case <-time.After(replyTimeout):
		require.FailNow(t, "the waiter never got the lock on the new file")
	}
	require.NotNil(t, l)
	defer l.Release()

	id, err := l.FileID()
	require.NoError(t, err)
	pathID, err := fsutil.PathID(path)
	require.NoError(t, err)
	assert.Equal(t, pathID, id, "the lock is not on the file path names now")
	data, err := l.ReadAll()
	require.NoError(t, err)
	assert.Equal(t, "new", string(data))

	h, err := lock.Holder(path)
	require.NoError(t, err)
	assert.True(t, h.Held, "the new file is not locked")
	assert.Equal(t, lock.Exclusive, h.Mode)
	if pidsKnown() {
		assert.Equal(t, os.Getpid(), h.PID)
	}
	prober := startServer(t, path)
	assert.Contains(t, prober.do("try x"), "locked", "another process could lock the new file")
	oldProber := startServer(t, oldLink)
	assert.Equal(t, "ok", oldProber.do("try x"), "the lock on the replaced file was not dropped")
}

func TestHolder(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		h, err := lock.Holder(filepath.Join(scratchDir(t), "missing"))
		require.NoError(t, err)
		assert.False(t, h.Held)
		assert.Equal(t, "not held", h.String())
	})
	t.Run("not_held", func(t *testing.T) {
		path := tempPath(t)
		l := mustAcquire(t, path, lock.Exclusive)
		require.NoError(t, l.Release())
		h, err := lock.Holder(path)
		require.NoError(t, err)
		assert.False(t, h.Held)
	})
	for _, mode := range []lock.Mode{lock.Shared, lock.Exclusive} {
		t.Run("held_"+mode.String(), func(t *testing.T) {
			path := tempPath(t)
			mustAcquire(t, path, mode)
			h, err := lock.Holder(path)
			require.NoError(t, err)
			assert.True(t, h.Held)
			assert.Equal(t, mode, h.Mode)
			assert.Contains(t, h.String(), mode.String())
			if pidsKnown() {
				assert.Equal(t, os.Getpid(), h.PID)
				assert.Contains(t, h.String(), "pid "+strconv.Itoa(os.Getpid()))
			}
			if runtime.GOOS == "linux" {
				comm, err := os.ReadFile("/proc/self/comm")
				require.NoError(t, err)
				assert.Equal(t, string(comm[:len(comm)-1]), h.Process)
			}
		})
	}
}

func TestHolderDoesNotTakeTheLock(t *testing.T) {
	path := tempPath(t)
	require.NoError(t, os.WriteFile(path, nil, 0o666))
	_, err := lock.Holder(path)
	require.NoError(t, err)
	l, err := lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err)
	_, err = lock.Holder(path)
	require.NoError(t, err)
	// On POSIX systems closing Holder's descriptor must not drop our lock.
	l2, err := lock.TryAcquire(path, lock.Exclusive)
	assert.ErrorIs(t, err, lock.ErrLocked)
	assert.Nil(t, l2)
	assert.NoError(t, l.Release())
}

func TestReleaseTwice(t *testing.T) {
	l, err := lock.TryAcquire(tempPath(t), lock.Exclusive)
	require.NoError(t, err)
	require.NoError(t, l.Release())
	err = l.Release()
	assert.ErrorIs(t, err, lock.ErrReleased)
	assert.ErrorIs(t, err, fs.ErrClosed)

	_, err = l.ReadAll()
	assert.ErrorIs(t, err, lock.ErrReleased)
	assert.ErrorIs(t, l.WriteAll([]byte("x")), lock.ErrReleased)
	assert.ErrorIs(t, l.Sync(), lock.ErrReleased)
	_, err = l.Stat()
	assert.ErrorIs(t, err, lock.ErrReleased)
	_, err = l.FileID()
	assert.ErrorIs(t, err, lock.ErrReleased)
}

func TestWriteAllNeedsExclusive(t *testing.T) {
	path := tempPath(t)
	require.NoError(t, os.WriteFile(path, []byte("before"), 0o666))
	l := mustAcquire(t, path, lock.Shared)
	err := l.WriteAll([]byte("after"))
	assert.ErrorIs(t, err, lock.ErrNotExclusive)
	data, err := l.ReadAll()
	require.NoError(t, err)
	assert.Equal(t, "before", string(data))
}

func TestAcquireRejectsBadArguments(t *testing.T) {
	dir := scratchDir(t)
	for _, tc := range []struct {
		name string
		path string
		mode lock.Mode
		opts []lock.Option
		want error  // errors.Is target, or nil
		msg  string // substring of the message, or ""
	}{
		{name: "mode_zero", path: filepath.Join(dir, "a"), mode: 0, msg: "invalid mode"},
		{name: "mode_three", path: filepath.Join(dir, "a"), mode: 3, msg: "invalid mode"},
		{name: "negative_offset", path: filepath.Join(dir, "a"), mode: lock.Exclusive, opts: []lock.Option{lock.WithOffset(-1)}, msg: "negative offset"},
		{name: "empty_path", path: "", mode: lock.Exclusive, want: fs.ErrInvalid},
		{name: "directory_exclusive", path: dir, mode: lock.Exclusive, want: lock.ErrNotRegular},
		{name: "directory_shared", path: dir, mode: lock.Shared, want: lock.ErrNotRegular},
		{name: "missing_parent", path: filepath.Join(dir, "no", "such", "file"), mode: lock.Exclusive, want: fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, try := range []bool{false, true} {
				var l *lock.Lock
				var err error
				if try {
					l, err = lock.TryAcquire(tc.path, tc.mode, tc.opts...)
				} else {
					l, err = lock.Acquire(context.Background(), tc.path, tc.mode, tc.opts...)
				}
				require.Error(t, err, "try=%v", try)
				assert.Nil(t, l)
				if tc.want != nil {
					assert.ErrorIs(t, err, tc.want, "try=%v", try)
				}
				if tc.msg != "" {
					assert.Contains(t, err.Error(), tc.msg)
				}
				var le *lock.Error
				assert.ErrorAs(t, err, &le)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotEqual(t, "a", e.Name(), "a rejected Acquire created its file")
	}
}

func TestReadAllWriteAllKeepTheFile(t *testing.T) {
	path := tempPath(t)
	l := mustAcquire(t, path, lock.Exclusive)
	before, err := fsutil.PathID(path)
	require.NoError(t, err)

	long := []byte(`{"url": "https://conda.anaconda.org/conda-forge/linux-64/repodata.json", "etag": "x"}`)
	require.NoError(t, l.WriteAll(long))
	got, err := l.ReadAll()
	require.NoError(t, err)
	assert.Equal(t, long, got)

	short := []byte(`{}`)
	require.NoError(t, l.WriteAll(short))
	require.NoError(t, l.Sync())
	got, err = l.ReadAll()
	require.NoError(t, err)
	assert.Equal(t, short, got, "WriteAll did not cut the file")

	fi, err := l.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(len(short)), fi.Size())
	after, err := fsutil.PathID(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "WriteAll replaced the file")
	id, err := l.FileID()
	require.NoError(t, err)
	assert.Equal(t, before, id)

	require.NoError(t, l.Release())
	onDisk, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, short, onDisk)
}

func TestLockingEmptyFileKeepsItEmpty(t *testing.T) {
	path := tempPath(t)
	for _, mode := range []lock.Mode{lock.Exclusive, lock.Shared} {
		l, err := lock.Acquire(context.Background(), path, mode)
		require.NoError(t, err)
		data, err := l.ReadAll()
		require.NoError(t, err)
		assert.Empty(t, data)
		require.NoError(t, l.Release())
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Zero(t, fi.Size(), "locking byte 21 in mode %v grew the file", mode)
	}
}

func TestAcquireKeepsExistingContent(t *testing.T) {
	path := tempPath(t)
	require.NoError(t, os.WriteFile(path, []byte("keep me"), 0o666))
	l := mustAcquire(t, path, lock.Exclusive)
	data, err := l.ReadAll()
	require.NoError(t, err)
	assert.Equal(t, "keep me", string(data))
}

func TestWithOffsetLocksAnotherByte(t *testing.T) {
	const off = 100
	path := tempPath(t)
	l := mustAcquire(t, path, lock.Exclusive, lock.WithOffset(off))
	assert.Equal(t, int64(off), l.Offset())
	assert.Equal(t, lock.Exclusive, l.Mode())
	assert.Equal(t, path, l.Path())

	h, err := lock.Holder(path)
	require.NoError(t, err)
	assert.False(t, h.Held, "byte 21 is held")
	h, err = lock.Holder(path, lock.WithOffset(off))
	require.NoError(t, err)
	assert.True(t, h.Held, "byte %d is not held", off)

	other, err := lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err, "byte 21 should be free")
	require.NoError(t, other.Release())
	_, err = lock.TryAcquire(path, lock.Exclusive, lock.WithOffset(off))
	assert.ErrorIs(t, err, lock.ErrLocked)
}

func TestErrorsUnwrap(t *testing.T) {
	assert.ErrorIs(t, lock.ErrUnsupported, errors.ErrUnsupported)
	assert.ErrorIs(t, lock.ErrReleased, fs.ErrClosed)
	assert.Equal(t, "Mode(7)", lock.Mode(7).String())
	assert.Equal(t, "not held", lock.HolderInfo{}.String())
	assert.Equal(t, "pid 42 (conda, exclusive)",
		lock.HolderInfo{Held: true, Mode: lock.Exclusive, PID: 42, Process: "conda"}.String())
	assert.Equal(t, "an unknown process (shared)",
		lock.HolderInfo{Held: true, Mode: lock.Shared}.String())
}
