package txn_test

import (
	"sync"

	"golang.org/x/sys/windows"
)

// underWine reports whether the suite runs under Wine, which does not model
// every behaviour of Windows; tests of such behaviour skip there, naming the
// difference.
var underWine = sync.OnceValue(func() bool {
	// Wine's ntdll exports wine_get_version; Windows' does not.
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
})
