//go:build !windows

package fsutil_test

import "testing"

// testDir is t.TempDir; on Windows it is a version Wine can clean up.
func testDir(t testing.TB) string { return t.TempDir() }
