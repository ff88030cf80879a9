package txn

import (
	"errors"
	"strings"
)

// Errors returned by this package. Most reach the caller wrapped in an *Error
// that names the operation and the path; test them with errors.Is.
var (
	// ErrTxDone is returned by every method of a Tx after Commit or
	// Rollback, except Rollback itself, which is a no-op after Commit.
	ErrTxDone = errors.New("transaction has already been committed or rolled back")

	// ErrTxManaged is returned when Commit or Rollback is called on the Tx
	// that Update passes to its function: Update ends that Tx itself.
	ErrTxManaged = errors.New("Commit and Rollback are not allowed inside Update")

	// ErrInvalidPath is returned by Begin, Read and View when a path is empty,
	// names a directory or another file that is not a regular file, or is a
	// dangling symbolic link.
	ErrInvalidPath = errors.New("invalid path")

	// ErrSameFile is returned by Begin, Read and View when the metadata and
	// data paths name the same file, directly, through a symbolic link or
	// through a hard link.
	ErrSameFile = errors.New("metadata and data paths name the same file")

	// ErrIncomplete is returned by Commit when the commit record was made
	// durable but applying it failed (a failed rename, write or sync).
	// The transaction is committed: the next Begin, Read or View on the pair
	// completes it from the record, and readers then see the new pair.
	// Nothing is retried in the meantime; a failed sync never is.
	ErrIncomplete = errors.New("commit recorded but not yet applied; the next Begin or Read completes it")

	// ErrForeignRecord is returned when a pending commit record beside the
	// metadata file belongs to a different data file than the one given:
	// the pair was opened with another data path before a crash.
	ErrForeignRecord = errors.New("pending commit record names another data file")
)

// Error records a failed operation on a pair.
type Error struct {
	Op   string // "begin", "commit", "rollback", "read", "recover", "write data", ...
	Path string // the file involved, or the metadata path
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("txn ")
	b.WriteString(e.Op)
	if e.Path != "" {
		b.WriteString(" ")
		b.WriteString(e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
