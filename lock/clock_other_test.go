//go:build !unix

package lock_test

import "time"

// monotonicNow is only meaningful within this process here; the handoff
// benchmark, which compares it between processes, runs on Unix only.
func monotonicNow() int64 { return time.Now().UnixNano() }
