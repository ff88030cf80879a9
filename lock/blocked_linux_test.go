package lock_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/fsutil"
)

// blockedPoll is how often waitUntilBlocked rereads /proc/locks.
const blockedPoll = time.Millisecond

// waitUntilBlocked returns once some process waits in the kernel for a lock
// on the file at path, as /proc/locks shows ("->" lines), so that a test
// knows a waiter is asleep before it releases the holder.
func waitUntilBlocked(t testing.TB, path string) {
	t.Helper()
	id, err := fsutil.PathID(path)
	require.NoError(t, err)
	ino := ":" + strconv.FormatUint(id.Ino, 10) + " "
	deadline := time.Now().Add(replyTimeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/locks")
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "->") && strings.Contains(line, ino) {
				return
			}
		}
		time.Sleep(blockedPoll)
	}
	require.FailNow(t, "no waiter appeared in /proc/locks", "for %s", path)
}
