package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// hasPeakRSS says whether peakRSS and resetPeakRSS work here.
const hasPeakRSS = true

// resetPeakRSS resets the kernel's record of this process's peak resident
// set (VmHWM) to the current resident set, and returns it in bytes.
func resetPeakRSS() (int64, error) {
	// "5" resets the peak RSS: proc(5), /proc/pid/clear_refs.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, err
	}
	return peakRSS()
}

// peakRSS returns this process's peak resident set (VmHWM) in bytes.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// loadAverage returns the 1-minute load average, or -1.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// cpuModel returns the processor's name, or "".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// bareLockName names the bare lock baseline.
const bareLockName = "bare F_OFD_SETLK + unlock"

// bareLock locks and unlocks byte 21 of the open file fd with fcntl and
// nothing else: the floor under any Acquire.
func bareLock(fd uintptr) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 21, Len: 1}
	if err := unix.FcntlFlock(fd, unix.F_OFD_SETLK, &lk); err != nil {
		return err
	}
	lk.Type = unix.F_UNLCK
	return unix.FcntlFlock(fd, unix.F_OFD_SETLK, &lk)
}

// bareWait waits for an exclusive lock on byte 21 of the open file fd with a
// blocking fcntl, and nothing else.
func bareWait(fd uintptr) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 21, Len: 1}
	for {
		err := unix.FcntlFlock(fd, unix.F_OFD_SETLKW, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}
