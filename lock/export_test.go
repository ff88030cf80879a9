package lock

import (
	"os"
	"time"
)

// Remedy exposes remedy to the tests.
var Remedy = remedy

// FailWith runs err, as if the system had returned it for an exclusive lock
// attempt on path, through the error path of Acquire.
func FailWith(path string, err error) error {
	f, oerr := os.Open(path)
	if oerr != nil {
		return oerr
	}
	e := &Error{Op: "acquire", Path: path, Offset: DefaultOffset, Mode: Exclusive}
	return failed(e, f, err, time.Now())
}
