//go:build unix && !linux

package main

import (
	"errors"

	"golang.org/x/sys/unix"
)

// hasPeakRSS says whether peakRSS and resetPeakRSS work here: only Linux can
// reset the peak.
const hasPeakRSS = false

func resetPeakRSS() (int64, error) { return 0, errors.ErrUnsupported }
func peakRSS() (int64, error)      { return 0, errors.ErrUnsupported }

// loadAverage returns the 1-minute load average, or -1.
func loadAverage() float64 {
	b, err := unix.SysctlRaw("vm.loadavg")
	if err != nil || len(b) < 12 {
		return -1
	}
	// struct loadavg { fixpt_t ldavg[3]; long fscale; }
	ld := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	var scale uint64
	for i := len(b) - 1; i >= 16; i-- {
		scale = scale<<8 | uint64(b[i])
	}
	if scale == 0 {
		return -1
	}
	return float64(ld) / float64(scale)
}

// cpuModel returns the processor's name, or "".
func cpuModel() string {
	s, err := unix.Sysctl("machdep.cpu.brand_string")
	if err != nil {
		s, _ = unix.Sysctl("hw.model")
	}
	return s
}

// bareLockName names the bare lock baseline.
const bareLockName = "bare F_SETLK + unlock"

// bareLock locks and unlocks byte 21 of the open file fd with fcntl and
// nothing else: the floor under any Acquire.
func bareLock(fd uintptr) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 21, Len: 1}
	if err := unix.FcntlFlock(fd, unix.F_SETLK, &lk); err != nil {
		return err
	}
	lk.Type = unix.F_UNLCK
	return unix.FcntlFlock(fd, unix.F_SETLK, &lk)
}

// bareWait waits for an exclusive lock on byte 21 of the open file fd with a
// blocking fcntl, and nothing else.
func bareWait(fd uintptr) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 21, Len: 1}
	for {
		err := unix.FcntlFlock(fd, unix.F_SETLKW, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}
