//go:build unix

package lock_test

import "golang.org/x/sys/unix"

// monotonicNow reads CLOCK_MONOTONIC, which, unlike the monotonic part of
// time.Now, is comparable between processes of one machine.
func monotonicNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}
