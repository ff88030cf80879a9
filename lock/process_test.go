package lock_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/lock"
)

func TestLockExcludesOtherProcess(t *testing.T) {
	path := tempPath(t)
	other := startServer(t, path)
	require.Equal(t, "held", other.do("hold x"))

	_, err := lock.TryAcquire(path, lock.Shared)
	require.ErrorIs(t, err, lock.ErrLocked)

	h, err := lock.Holder(path)
	require.NoError(t, err)
	assert.True(t, h.Held)
	assert.Equal(t, lock.Exclusive, h.Mode)
	if pidsKnown() {
		assert.Equal(t, other.pid(), h.PID, "Holder does not name the other process")
	}

	ctx, cancel := context.WithTimeout(context.Background(), cancelAfter)
	defer cancel()
	_, err = lock.Acquire(ctx, path, lock.Exclusive)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	checkWaitError(t, err, path, other.pid())

	require.True(t, strings.HasPrefix(other.do("release"), "released "))
	skipUnderWine(t, wineNoCancel)
	l, err := lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err, "the byte is still held after the other process released it")
	assert.NoError(t, l.Release())
}

func TestOtherProcessIsExcludedByUs(t *testing.T) {
	path := tempPath(t)
	other := startServer(t, path)

	l, err := lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err)
	assert.Contains(t, other.do("try x"), "locked ")
	assert.Contains(t, other.do("try s"), "locked ")
	require.NoError(t, l.Release())
	assert.Equal(t, "ok", other.do("try x"))

	l, err = lock.TryAcquire(path, lock.Shared)
	require.NoError(t, err)
	assert.Equal(t, "ok", other.do("try s"), "shared locks of two processes should coexist")
	reply := other.do("try x")
	assert.Contains(t, reply, "locked ")
	assert.Contains(t, reply, "held by")
	assert.NoError(t, l.Release())
}

func TestAcquireWaitsForOtherProcess(t *testing.T) {
	path := tempPath(t)
	other := startServer(t, path)
	require.Equal(t, "held", other.do("hold x"))
	got := make(chan error, 1)
	go func() {
		l, err := lock.Acquire(context.Background(), path, lock.Exclusive)
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	waitUntilBlocked(t, path)
	require.True(t, strings.HasPrefix(other.do("release"), "released "))
	assert.NoError(t, <-got)
}

func TestLockFreedWhenHolderEnds(t *testing.T) {
	for _, how := range []string{"killed", "exited"} {
		t.Run(how, func(t *testing.T) {
			path := tempPath(t)
			other := startServer(t, path)
			require.Equal(t, "held", other.do("hold x"))
			_, err := lock.TryAcquire(path, lock.Exclusive)
			require.ErrorIs(t, err, lock.ErrLocked)
			h, err := lock.Holder(path)
			require.NoError(t, err)
			if pidsKnown() {
				assert.Equal(t, other.pid(), h.PID)
			}

			if how == "killed" {
				other.kill()
			} else {
				other.exit()
			}
			// Windows may free a dead process's locks a moment after it
			// is gone, so wait for the byte rather than try it once.
			ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
			defer cancel()
			l, err := lock.Acquire(ctx, path, lock.Exclusive)
			require.NoError(t, err, "the lock outlived its process")
			assert.NoError(t, l.Release())
		})
	}
}
