//go:build !linux

package lock_test

import (
	"testing"
	"time"
)

// blockedSettle is how long waitUntilBlocked gives a waiter to fall asleep
// where the system does not show waiters. A waiter that is slower only makes
// the test weaker (it finds the byte free), never wrong.
const blockedSettle = 50 * time.Millisecond

// waitUntilBlocked gives a waiter on path time to start waiting.
func waitUntilBlocked(t testing.TB, path string) { time.Sleep(blockedSettle) }
