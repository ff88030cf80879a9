package lock_test

import (
	"context"
	"testing"

	"github.com/txnpair/txnpair/lock"
)

// BenchmarkAcquireRelease measures an uncontended Acquire and Release of an
// Exclusive lock on an existing file: open, lock, identity check, unlock,
// close. Target: at most 10µs.
func BenchmarkAcquireRelease(b *testing.B) {
	path := tempPath(b)
	ctx := context.Background()
	for b.Loop() {
		l, err := lock.Acquire(ctx, path, lock.Exclusive)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTryAcquireRelease is BenchmarkAcquireRelease without waiting.
func BenchmarkTryAcquireRelease(b *testing.B) {
	path := tempPath(b)
	for b.Loop() {
		l, err := lock.TryAcquire(path, lock.Exclusive)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
	}
}
