//go:build !windows

package lock_test

import "testing"

// Stand-ins for the Wine helpers of helpers_windows_test.go, so that tests
// shared by every system can skip what Wine does not model.

const wineNoCancel = ""

func underWine() bool { return false }

func skipUnderWine(t testing.TB, why string) {}
