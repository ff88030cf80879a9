//go:build !windows

package txn_test

// underWine reports whether the suite runs under Wine, which does not model
// every behaviour of Windows; tests of such behaviour skip there, naming the
// difference. Only Windows binaries run under Wine.
func underWine() bool { return false }
