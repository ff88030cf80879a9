//go:build !linux && !darwin && !freebsd && !dragonfly && !windows

package fsutil

func fsType(path string) (string, error) { return "unknown", nil }
