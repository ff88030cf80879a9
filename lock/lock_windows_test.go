package lock_test

// Windows tests of LockFileEx on byte 21: exclusion between handles,
// goroutines and processes, cancellation, holder probing, reads and writes
// through the locked handle, and the mandatory-lock behaviour Wine does not
// model. They run under Wine in CI (.ci/wine-test).

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/windows"

	"github.com/txnpair/txnpair/lock"
)

const (
	// winCancelAfter is how long a cancellation test lets Acquire wait before
	// cancelling it, so that the wait is under way in the kernel.
	winCancelAfter = 50 * time.Millisecond

	// freedWithin bounds how long a test waits for a lock that must become
	// free; it only stops a broken test from hanging, and asserts nothing
	// about speed.
	freedWithin = time.Minute
)

// runChild runs the role this process was started in by startChild, if any,
// and exits; it returns at once in the parent.
func runChild() {
	role := os.Getenv(childEnv)
	if role == "" {
		return
	}
	path := os.Getenv(pathEnv)
	p := newParentLink()
	switch role {
	case "hold-exclusive", "hold-shared":
		mode := lock.Exclusive
		if role == "hold-shared" {
			mode = lock.Shared
		}
		l, err := lock.Acquire(context.Background(), path, mode)
		if err != nil {
			childFail("acquire: %v", err)
		}
		p.say("locked")
		for {
			switch cmd := p.next(); {
			case cmd == "":
				os.Exit(0) // the lock dies with the process
			case cmd == "release":
				if err := l.Release(); err != nil {
					childFail("release: %v", err)
				}
				p.say("released")
			case len(cmd) > 6 && cmd[:6] == "write ":
				if err := l.WriteAll([]byte(cmd[6:])); err != nil {
					childFail("write: %v", err)
				}
				p.say("written")
			default:
				childFail("unknown command %q", cmd)
			}
		}
	case "wait":
		if _, err := lock.TryAcquire(path, lock.Exclusive); !errors.Is(err, lock.ErrLocked) {
			childFail("TryAcquire while held: got %v, want ErrLocked", err)
		}
		p.say("blocked")
		l, err := lock.Acquire(context.Background(), path, lock.Exclusive)
		if err != nil {
			childFail("acquire: %v", err)
		}
		b, err := l.ReadAll()
		if err != nil {
			childFail("read: %v", err)
		}
		p.say("got " + string(b))
		if err := l.WriteAll([]byte("from child")); err != nil {
			childFail("write: %v", err)
		}
		if err := l.Release(); err != nil {
			childFail("release: %v", err)
		}
		p.say("done")
		os.Exit(0)
	}
	childFail("unknown role %q", role)
}

func lockPath(t *testing.T) string {
	return filepath.Join(winTempDir(t), "repodata.info.json")
}

// requireHeldByOther checks, from a fresh handle, that some other handle
// holds byte 21 exclusively.
func requireHeldByOther(t *testing.T, path string) {
	t.Helper()
	h := rawOpen(t, path)
	require.ErrorIs(t, rawTryLock(h, lock.DefaultOffset, false), windows.ERROR_LOCK_VIOLATION)
}

// requireFree checks, from a fresh handle, that nobody holds byte 21.
func requireFree(t *testing.T, path string) {
	t.Helper()
	h := rawOpen(t, path)
	require.NoError(t, rawTryLock(h, lock.DefaultOffset, true), "byte 21 is still locked")
	require.NoError(t, rawUnlock(h, lock.DefaultOffset))
	windows.CloseHandle(h)
}

func TestLockExcludesOtherHandlesLockFileEx(t *testing.T) {
	path := lockPath(t)
	l, err := lock.Acquire(context.Background(), path, lock.Exclusive)
	require.NoError(t, err)

	h := rawOpen(t, path)
	assert.ErrorIs(t, rawTryLock(h, lock.DefaultOffset, true), windows.ERROR_LOCK_VIOLATION, "exclusive LockFileEx on byte 21")
	assert.ErrorIs(t, rawTryLock(h, lock.DefaultOffset, false), windows.ERROR_LOCK_VIOLATION, "shared LockFileEx on byte 21")
	for _, off := range []int64{lock.DefaultOffset - 1, lock.DefaultOffset + 1} {
		if assert.NoError(t, rawTryLock(h, off, true), "byte %d must stay free", off) {
			require.NoError(t, rawUnlock(h, off))
		}
	}

	require.NoError(t, l.Release())
	require.NoError(t, rawTryLock(h, lock.DefaultOffset, true), "byte 21 after Release")

	// Now the other handle holds it, as msvcrt.locking in conda would.
	_, err = lock.TryAcquire(path, lock.Exclusive)
	assert.ErrorIs(t, err, lock.ErrLocked)
	_, err = lock.TryAcquire(path, lock.Shared)
	assert.ErrorIs(t, err, lock.ErrLocked)
	require.NoError(t, rawUnlock(h, lock.DefaultOffset))
}

func TestSharedLocksExcludeOnlyExclusive(t *testing.T) {
	path := lockPath(t)
	s1, err := lock.TryAcquire(path, lock.Shared)
	require.NoError(t, err)
	s2, err := lock.TryAcquire(path, lock.Shared)
	require.NoError(t, err, "a second shared lock")

	_, err = lock.TryAcquire(path, lock.Exclusive)
	assert.ErrorIs(t, err, lock.ErrLocked)

	require.NoError(t, s1.Release())
	_, err = lock.TryAcquire(path, lock.Exclusive)
	assert.ErrorIs(t, err, lock.ErrLocked, "one shared holder is left")
	require.NoError(t, s2.Release())

	x, err := lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err)
	require.NoError(t, x.Release())
}

func TestLockExcludesGoroutines(t *testing.T) {
	const (
		goroutines = 4
		rounds     = 25
	)
	path := lockPath(t)
	var inside, entries atomic.Int32
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range rounds {
				l, err := lock.Acquire(context.Background(), path, lock.Exclusive)
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, int32(1), inside.Add(1), "two goroutines hold the lock")
				entries.Add(1)
				inside.Add(-1)
				assert.NoError(t, l.Release())
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(goroutines*rounds), entries.Load())
}

func TestLockExcludesProcesses(t *testing.T) {
	runChild()
	path := lockPath(t)
	c := startChild(t, t.Name(), "hold-exclusive", path)
	c.expect(t, "locked")

	_, err := lock.TryAcquire(path, lock.Exclusive)
	require.ErrorIs(t, err, lock.ErrLocked)
	var le *lock.Error
	require.ErrorAs(t, err, &le)
	if assert.NotNil(t, le.Holder, "the error names the holder") {
		assert.Equal(t, lock.Exclusive, le.Holder.Mode)
		assert.Zero(t, le.Holder.PID, "Windows does not tell the holder's pid")
	}
	_, err = lock.TryAcquire(path, lock.Shared)
	assert.ErrorIs(t, err, lock.ErrLocked)
	requireHeldByOther(t, path)

	c.send(t, "release")
	c.expect(t, "released")
	l, err := lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err)
	require.NoError(t, l.Release())
	c.wait(t)
}

func TestSharedLockOfOtherProcessExcludesOnlyExclusive(t *testing.T) {
	runChild()
	path := lockPath(t)
	c := startChild(t, t.Name(), "hold-shared", path)
	c.expect(t, "locked")

	_, err := lock.TryAcquire(path, lock.Exclusive)
	assert.ErrorIs(t, err, lock.ErrLocked)
	s, err := lock.TryAcquire(path, lock.Shared)
	require.NoError(t, err)
	require.NoError(t, s.Release())
	c.wait(t)
}

func TestHolderReportsModeByProbing(t *testing.T) {
	runChild()
	path := lockPath(t)

	h, err := lock.Holder(path)
	require.NoError(t, err)
	assert.False(t, h.Held, "missing file")

	for _, mode := range []lock.Mode{lock.Exclusive, lock.Shared} {
		t.Run(mode.String(), func(t *testing.T) {
			role := "hold-exclusive"
			if mode == lock.Shared {
				role = "hold-shared"
			}
			c := startChild(t, "TestHolderReportsModeByProbing", role, path)
			c.expect(t, "locked")
			h, err := lock.Holder(path)
			require.NoError(t, err)
			assert.True(t, h.Held)
			assert.Equal(t, mode, h.Mode)
			assert.Zero(t, h.PID, "Windows does not tell the holder's pid")
			assert.Equal(t, "an unknown process ("+mode.String()+")", h.String())

			c.send(t, "release")
			c.expect(t, "released")
			h, err = lock.Holder(path)
			require.NoError(t, err)
			assert.False(t, h.Held, "after release")
			c.wait(t)
		})
	}

	// Probing must leave nothing behind.
	requireFree(t, path)
}

func TestAcquireCancelledWhileWaitingLeavesNoLock(t *testing.T) {
	path := lockPath(t)
	holder, err := lock.Acquire(context.Background(), path, lock.Exclusive)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), winCancelAfter)
	defer cancel()
	// The holder keeps the byte until Acquire has returned: only the
	// cancellation can end the wait.
	_, err = lock.Acquire(ctx, path, lock.Exclusive)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var le *lock.Error
	require.ErrorAs(t, err, &le)
	assert.Positive(t, le.Waited, "the error says how long Acquire waited")
	if assert.NotNil(t, le.Holder) {
		assert.Equal(t, lock.Exclusive, le.Holder.Mode)
	}

	require.NoError(t, holder.Release())
	skipUnderWine(t, wineNoCancel)
	requireFree(t, path)
}

func TestAcquireCancelledBeforeWaitStartsLeavesNoLock(t *testing.T) {
	// Cancelling at once races the cancellation with the start of the
	// blocking LockFileEx; repeat to meet both orders.
	const rounds = 20
	path := lockPath(t)
	holder, err := lock.Acquire(context.Background(), path, lock.Exclusive)
	require.NoError(t, err)
	for range rounds {
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		_, err = lock.Acquire(ctx, path, lock.Exclusive)
		require.ErrorIs(t, err, context.Canceled)
	}
	require.NoError(t, holder.Release())
	skipUnderWine(t, wineNoCancel)
	requireFree(t, path)
}

func TestAcquireCancelRacingReleaseLeavesNoLock(t *testing.T) {
	// The holder releases while the waiter is cancelled: the waiter either
	// gets the lock (and must release it) or fails with the context's
	// error, and in both cases nothing stays locked.
	const rounds = 20
	skipUnderWine(t, wineNoCancel)
	path := lockPath(t)
	for range rounds {
		holder, err := lock.Acquire(context.Background(), path, lock.Exclusive)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		start := make(chan struct{})
		go func() {
			<-start
			cancel()
		}()
		go func() {
			<-start
			holder.Release()
		}()
		close(start)
		l, err := lock.Acquire(ctx, path, lock.Exclusive)
		if err == nil {
			require.NoError(t, l.Release())
		} else {
			require.ErrorIs(t, err, context.Canceled)
		}
		cancel()
		// The holder's Release may still be running.
		l, err = lock.Acquire(context.Background(), path, lock.Exclusive)
		require.NoError(t, err)
		require.NoError(t, l.Release())
		requireFree(t, path)
	}
}

func TestAcquireWaitsForOtherProcessAndCancels(t *testing.T) {
	runChild()
	path := lockPath(t)
	c := startChild(t, t.Name(), "hold-exclusive", path)
	c.expect(t, "locked")

	ctx, cancel := context.WithTimeout(context.Background(), winCancelAfter)
	defer cancel()
	_, err := lock.Acquire(ctx, path, lock.Exclusive)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	requireHeldByOther(t, path)

	// A waiting Acquire gets the lock when the other process releases it.
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), freedWithin)
		defer cancel()
		l, err := lock.Acquire(ctx, path, lock.Exclusive)
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	c.send(t, "release")
	c.expect(t, "released")
	require.NoError(t, <-got)
	c.wait(t)
}

func TestLockFreedWhenHolderKilled(t *testing.T) {
	runChild()
	path := lockPath(t)
	c := startChild(t, t.Name(), "hold-exclusive", path)
	c.expect(t, "locked")
	_, err := lock.TryAcquire(path, lock.Exclusive)
	require.ErrorIs(t, err, lock.ErrLocked)

	c.kill(t)
	// Windows frees a dead process's locks when its handles are closed,
	// which the system may delay; Wine frees them at once.
	ctx, cancel := context.WithTimeout(context.Background(), freedWithin)
	defer cancel()
	l, err := lock.Acquire(ctx, path, lock.Exclusive)
	require.NoError(t, err)
	require.NoError(t, l.Release())
}

func TestWriteAllThroughLockedHandleWhileProcessWaits(t *testing.T) {
	runChild()
	path := lockPath(t)
	l, err := lock.Acquire(context.Background(), path, lock.Exclusive)
	require.NoError(t, err)
	require.NoError(t, l.WriteAll([]byte(`{"a long first version": "that is cut back later"}`)))

	c := startChild(t, t.Name(), "wait", path)
	c.expect(t, "blocked")

	const content = `{"mod": "Tue, 01 Jul 2025"}`
	require.NoError(t, l.WriteAll([]byte(content)), "write in place while the child waits")
	require.NoError(t, l.Sync())
	b, err := l.ReadAll()
	require.NoError(t, err)
	assert.Equal(t, content, string(b), "the file is cut to the new length")
	fi, err := l.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(len(content)), fi.Size())
	require.NoError(t, l.Release())

	assert.Equal(t, content, c.expect(t, "got "), "the waiting process reads what was written")
	c.expect(t, "done")
	c.wait(t)

	l, err = lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err)
	b, err = l.ReadAll()
	require.NoError(t, err)
	assert.Equal(t, "from child", string(b))
	require.NoError(t, l.Release())
}

func TestReadAllWorksUnderSharedLock(t *testing.T) {
	path := lockPath(t)
	x, err := lock.Acquire(context.Background(), path, lock.Exclusive)
	require.NoError(t, err)
	require.NoError(t, x.WriteAll([]byte("0123456789012345678901234567890")))
	require.NoError(t, x.Release())

	s1, err := lock.Acquire(context.Background(), path, lock.Shared)
	require.NoError(t, err)
	defer s1.Release()
	s2, err := lock.Acquire(context.Background(), path, lock.Shared)
	require.NoError(t, err)
	defer s2.Release()
	for _, s := range []*lock.Lock{s1, s2} {
		b, err := s.ReadAll()
		require.NoError(t, err, "a shared lock lets every handle read the byte")
		assert.Equal(t, "0123456789012345678901234567890", string(b))
		assert.ErrorIs(t, s.WriteAll(nil), lock.ErrNotExclusive)
	}
}

func TestExclusiveLockIsMandatoryForOtherHandles(t *testing.T) {
	skipUnderWine(t, "Wine's byte-range locks are advisory: other handles may read and write a locked byte")
	path := lockPath(t)
	l, err := lock.Acquire(context.Background(), path, lock.Exclusive)
	require.NoError(t, err)
	defer l.Release()
	require.NoError(t, l.WriteAll(make([]byte, 64)))

	h := rawOpen(t, path)
	buf := make([]byte, 64)
	var n uint32
	err = windows.ReadFile(h, buf, &n, &windows.Overlapped{})
	assert.ErrorIs(t, err, windows.ERROR_LOCK_VIOLATION, "another handle reads a range holding byte 21")
	err = windows.WriteFile(h, buf, &n, &windows.Overlapped{})
	assert.ErrorIs(t, err, windows.ERROR_LOCK_VIOLATION, "another handle writes a range holding byte 21")
	// Bytes outside the lock stay accessible.
	err = windows.ReadFile(h, buf[:8], &n, &windows.Overlapped{Offset: 32})
	assert.NoError(t, err, "reading past the locked byte")

	b, err := l.ReadAll()
	require.NoError(t, err, "the locking handle itself reads and writes")
	assert.Len(t, b, 64)
}

func TestSharedLockRefusesWritesToEveryHandle(t *testing.T) {
	skipUnderWine(t, "Wine's byte-range locks are advisory: a shared lock does not refuse writes")
	path := lockPath(t)
	x, err := lock.Acquire(context.Background(), path, lock.Exclusive)
	require.NoError(t, err)
	require.NoError(t, x.WriteAll(make([]byte, 64)))
	require.NoError(t, x.Release())

	s, err := lock.Acquire(context.Background(), path, lock.Shared)
	require.NoError(t, err)
	defer s.Release()
	h := rawOpen(t, path)
	buf := make([]byte, 64)
	var n uint32
	assert.NoError(t, windows.ReadFile(h, buf, &n, &windows.Overlapped{}), "reads pass a shared lock")
	err = windows.WriteFile(h, buf, &n, &windows.Overlapped{})
	assert.ErrorIs(t, err, windows.ERROR_LOCK_VIOLATION, "writes do not")
}

func TestUnlockingUnlockedByteIsErrorNotLocked(t *testing.T) {
	// lock_windows.go's unlock treats ERROR_NOT_LOCKED as success.
	skipUnderWine(t, "Wine 8.0 returns ERROR_LOCK_VIOLATION (33), not ERROR_NOT_LOCKED (158), for unlocking an unlocked range")
	path := lockPath(t)
	require.NoError(t, os.WriteFile(path, nil, 0o666))
	h := rawOpen(t, path)
	assert.ErrorIs(t, rawUnlock(h, lock.DefaultOffset), windows.ERROR_NOT_LOCKED)
}
