//go:build unix

package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// childFlag, as the first argument, turns this program into a child process
// of a cross-process scenario. It is not a flag of the command line proper.
const childFlag = "-child"

// child runs the child process kind args[0] and returns its exit code.
func child(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "bench child: no kind")
		return 2
	}
	var err error
	switch args[0] {
	case "hold":
		err = childHold(args[1:])
	case "commit":
		err = childCommit(args[1:])
	case "rss":
		err = childRSS(args[1:])
	default:
		err = fmt.Errorf("unknown kind %q", args[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// self returns the path of this program, to start children.
func self() string {
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return p
}

// monoNow reads CLOCK_MONOTONIC, which every process on the machine shares,
// so that a time stamped in one process can be compared with another's.
func monoNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("bench: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return time.Duration(ts.Nano())
}

// sleepUntil sleeps until the monotonic clock reads t.
func sleepUntil(t time.Duration) {
	if d := t - monoNow(); d > 0 {
		time.Sleep(d)
	}
}

// kernel returns the kernel's name and release.
func kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
}
