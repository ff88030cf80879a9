// Package txn replaces a pair of files — a metadata file and a data file —
// as one transaction, under the byte-range lock conda takes on byte 21 of the
// metadata file.
//
// If Commit returns nil, the new pair has replaced the old one: a reader that
// takes the lock (Read, View, Begin, or conda) sees both new files or, before
// the commit, both old ones, never one of each; and under the default
// durability, Full, the new pair survives a power loss. If the process
// crashes or the power fails at any instant of a commit, the next Begin, Read
// or View on the pair finds exactly the old pair or exactly the new one.
//
// How: the new data is staged in a temporary file in the data file's
// directory (by renameio), after an intent record beside the metadata file
// says a transaction is staging. Commit replaces the intent with a
// checksummed commit record holding the new metadata and the staged file's
// identity and checksum, and makes it durable before any target changes.
// Then it renames the staged file over the data file, rewrites the metadata
// file in place through the locked handle, syncs both, and removes the
// record. Recovery, which Begin,
// Read and View run under the exclusive lock when a record exists, rolls a
// valid record forward and removes the leftovers of transactions that never
// committed.
//
// The metadata file is never replaced by rename: it is the lock's home, and
// processes waiting on the old file would lock an orphan. It keeps its inode
// for life. The data file gets a new inode at every commit that replaces it.
//
// The limits:
//
//   - Readers must take the lock. A reader that opens the files without it
//     (a plain os.ReadFile of both) can see a mixed pair during a commit.
//     conda reads under the lock.
//   - conda's own writer follows the lock protocol but not this package's
//     recovery: a conda process killed mid-write can leave a mixed pair that
//     no commit record describes. conda's load check (mtime_ns and size in the
//     metadata against the data file) catches that case.
//   - A data path that is a symbolic link is followed: the link stays, and
//     the file it points to is replaced, staged in that file's directory. The
//     same holds for the metadata path. A dangling link is ErrInvalidPath.
//   - Begin creates the metadata file (empty) if it does not exist, since the
//     lock lives in it; a rolled-back transaction leaves it in place.
//   - The lock's limits apply: see package lock (network filesystems,
//     Windows' mandatory locks).
//   - On Windows, while any process has the data file open without sharing
//     delete access (os.Open does not share it; an unclosed reader from
//     OpenData, say), the file cannot be replaced. Commit checks before its
//     point of no return and then fails, leaving the old pair; if a reader
//     opens the file after that check, Commit returns ErrIncomplete and the
//     next Begin or Read completes it once the reader has closed the file.
package txn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/lock"
)

// dataBufferSize is the size of the buffer in front of the staged data file;
// writes of directWrite bytes or more go straight to the file when the
// buffer is empty (io.Copy writes 32 KiB at a time).
const (
	dataBufferSize = 64 << 10
	directWrite    = 16 << 10
)

// Tx is a transaction on one pair, holding the pair's exclusive lock from
// Begin until Commit or Rollback. You must end every Tx with Commit or
// Rollback, or the lock stays held: `defer tx.Rollback()` right after Begin
// is the idiom, as Rollback is a no-op after Commit.
//
// A Tx is not safe for concurrent use by several goroutines. Several Tx on
// one pair, in one process or many, run one at a time: Begin waits. So do
// Read and View: a goroutine that holds a Tx and calls Read on the same pair
// waits for itself forever; read through the Tx (ReadMeta, OpenData).
type Tx struct {
	cfg  config
	p    pair
	lk   *lock.Lock
	rec  Recovery // what Begin's recovery did
	done bool
	// committed is set by a successful Commit; Rollback is then a no-op.
	committed bool
	managed   bool // owned by Update

	meta  *bytes.Buffer // non-nil once Meta was called
	stage *stagedFile   // non-nil once Data was called and staging worked
	buf   *bufio.Writer
	werr  error  // the first error staging the data
	sum   uint32 // CRC-32C of the data written so far (NoSync only)
	// hasRecord: this transaction wrote the record file (an intent or the
	// commit record), which it must remove once its staged file is gone.
	hasRecord bool
}

// Begin locks the pair for writing and returns a transaction on it. It is
// BeginContext with a background context: it waits as long as the lock is
// held.
func Begin(metaPath, dataPath string, opts ...Option) (*Tx, error) {
	return BeginContext(context.Background(), metaPath, dataPath, opts...)
}

// BeginContext takes the exclusive lock on the metadata file at metaPath,
// waiting until it is granted or ctx is done, recovers an interrupted commit
// or the leftovers of one if a crash left any, and returns a transaction on
// the pair. The metadata file is created, empty, if it does not exist; the
// data file need not exist.
//
// Bad paths fail before anything is locked or created, with an *Error
// wrapping ErrInvalidPath, ErrSameFile or the system's error (fs.ErrNotExist
// for a missing directory, syscall.ENOTDIR when a path component is a file,
// fs.ErrPermission).
func BeginContext(ctx context.Context, metaPath, dataPath string, opts ...Option) (*Tx, error) {
	cfg := newConfig(opts)
	p, err := resolvePair("begin", metaPath, dataPath)
	if err != nil {
		return nil, err
	}
	lk, err := lock.Acquire(ctx, p.meta, lock.Exclusive, lock.WithPerm(cfg.perm))
	if err != nil {
		return nil, &Error{Op: "begin", Path: p.meta, Err: err}
	}
	if err := p.checkSame("begin"); err != nil {
		lk.Release()
		return nil, err
	}
	tx := &Tx{cfg: cfg, p: p, lk: lk}
	if err := tx.recover(); err != nil {
		lk.Release()
		return nil, err
	}
	return tx, nil
}

func (tx *Tx) doneErr(op string) error {
	return &Error{Op: op, Path: tx.p.meta, Err: ErrTxDone}
}

// Meta returns a writer for the new content of the metadata file, which
// replaces the old content on Commit. If Meta is never called, the metadata
// file keeps its content; if it is called and nothing is written, Commit
// empties the file. The content is held in memory until Commit.
func (tx *Tx) Meta() io.Writer {
	if !tx.done && tx.meta == nil {
		tx.meta = new(bytes.Buffer)
	}
	return metaWriter{tx}
}

type metaWriter struct{ tx *Tx }

func (w metaWriter) Write(p []byte) (int, error) {
	if w.tx.done {
		return 0, w.tx.doneErr("write metadata")
	}
	return w.tx.meta.Write(p)
}

// Data returns a writer for the new content of the data file, which replaces
// the old file on Commit. What is written streams to a staged file in the data
// file's directory, so memory use does not grow with the data. If Data is
// never called, the data file keeps its content; if it is called and nothing
// is written, Commit makes the file empty.
//
// A failed write (ENOSPC, EDQUOT, EIO) is returned by Write, by every later
// Write, and by Commit, which then rolls back.
func (tx *Tx) Data() io.Writer {
	if !tx.done && tx.stage == nil && tx.werr == nil {
		if err := tx.startStaging(); err != nil {
			tx.werr = &Error{Op: "stage data", Path: tx.p.data, Err: err}
		}
	}
	return dataWriter{tx}
}

// startStaging writes the intent record, then creates the staged file. In
// that order, a crash leaves no staged file that no record points recovery
// to.
func (tx *Tx) startStaging() error {
	intent := (&record{intent: true}).encode()
	if err := os.WriteFile(tx.p.record, intent, tx.cfg.perm); err != nil {
		return err
	}
	tx.hasRecord = true
	s, err := stage(tx.p.data, tx.cfg.perm)
	if err != nil {
		return errors.Join(err, tx.removeRecord())
	}
	tx.stage = s
	tx.buf = bufio.NewWriterSize(s.file(), dataBufferSize)
	return nil
}

// removeRecord removes the record or intent, if this transaction wrote one.
func (tx *Tx) removeRecord() error {
	if !tx.hasRecord {
		return nil
	}
	if err := os.Remove(tx.p.record); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tx.hasRecord = false
	return nil
}

type dataWriter struct{ tx *Tx }

func (w dataWriter) Write(p []byte) (int, error) {
	tx := w.tx
	if tx.done {
		return 0, tx.doneErr("write data")
	}
	if tx.werr != nil {
		return 0, tx.werr
	}
	var n int
	var err error
	if len(p) >= directWrite && tx.buf.Buffered() == 0 {
		n, err = tx.stage.file().Write(p) // large and aligned: skip the copy
	} else {
		n, err = tx.buf.Write(p)
	}
	if tx.cfg.durability != Full {
		tx.sum = crc32.Update(tx.sum, castagnoli, p[:n])
	}
	if err != nil {
		tx.werr = &Error{Op: "write data", Path: tx.stage.name(), Err: err}
		return n, tx.werr
	}
	return n, nil
}

// DataInfo returns what the data file will look like after Commit: the
// staged file's size and modification time once Data was called (call it
// after the last write; the rename keeps both), else the current data
// file's. Programs that record the data file's mtime and size in the
// metadata, as conda does, use it to fill in the metadata before Commit.
func (tx *Tx) DataInfo() (fs.FileInfo, error) {
	if tx.done {
		return nil, tx.doneErr("stat data")
	}
	if tx.werr != nil {
		return nil, tx.werr
	}
	if tx.stage == nil {
		fi, err := os.Stat(tx.p.data)
		if err != nil {
			return nil, &Error{Op: "stat data", Path: tx.p.data, Err: err}
		}
		return fi, nil
	}
	if err := tx.buf.Flush(); err != nil {
		tx.werr = &Error{Op: "write data", Path: tx.stage.name(), Err: err}
		return nil, tx.werr
	}
	fi, err := tx.stage.file().Stat()
	if err != nil {
		return nil, &Error{Op: "stat data", Path: tx.stage.name(), Err: err}
	}
	return fi, nil
}

// ReadMeta returns the committed content of the metadata file as of Begin
// (what Meta has staged is not included), read through the locked handle.
// It is empty if the file did not exist.
func (tx *Tx) ReadMeta() ([]byte, error) {
	if tx.done {
		return nil, tx.doneErr("read metadata")
	}
	b, err := tx.lk.ReadAll()
	if err != nil {
		return nil, &Error{Op: "read metadata", Path: tx.p.meta, Err: err}
	}
	return b, nil
}

// OpenData opens the committed data file as of Begin for reading (what Data
// has staged is not included). If the data file does not exist, the reader
// is empty. Close it before Commit: on Windows an open reader keeps Commit
// from replacing the file.
func (tx *Tx) OpenData() (io.ReadCloser, error) {
	if tx.done {
		return nil, tx.doneErr("open data")
	}
	return openData(tx.p.data)
}

func openData(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if err != nil {
		return nil, &Error{Op: "open data", Path: path, Err: err}
	}
	return f, nil
}

// Recovery returns what Begin's recovery found and did.
func (tx *Tx) Recovery() Recovery { return tx.rec }

// Rollback discards the staged content, removes the staged file and releases
// the lock. After Commit it does nothing and returns nil; after Rollback it
// returns an error satisfying errors.Is(err, ErrTxDone).
func (tx *Tx) Rollback() error {
	if tx.committed {
		return nil
	}
	if tx.done {
		return tx.doneErr("rollback")
	}
	if tx.managed {
		return &Error{Op: "rollback", Path: tx.p.meta, Err: ErrTxManaged}
	}
	return tx.rollback()
}

func (tx *Tx) rollback() error {
	var errs []error
	if tx.stage != nil {
		errs = append(errs, tx.stage.discard())
	}
	errs = append(errs, tx.removeRecord(), tx.release())
	if err := errors.Join(errs...); err != nil {
		return &Error{Op: "rollback", Path: tx.p.meta, Err: err}
	}
	return nil
}

// release ends the transaction and drops the lock.
func (tx *Tx) release() error {
	tx.done = true
	return tx.lk.Release()
}

// Commit replaces the pair with what was written to Meta and Data, then
// releases the lock. Its result has three cases:
//
//   - nil: the new pair is in place, and under Full durability it survives
//     a power loss.
//   - an error wrapping ErrIncomplete: the commit record was durable before
//     the failure, so the transaction is committed; the next Begin, Read or
//     View completes it. Do not redo the transaction.
//   - any other error (a failed write, a full disk, a failed sync before the
//     record was durable): nothing changed; the old pair stays and no staged
//     or record file is left. The transaction may be retried.
//
// After Commit, every method but Rollback returns ErrTxDone.
func (tx *Tx) Commit() error {
	if tx.done {
		return tx.doneErr("commit")
	}
	if tx.managed {
		return &Error{Op: "commit", Path: tx.p.meta, Err: ErrTxManaged}
	}
	return tx.commit()
}

func (tx *Tx) commit() error {
	if tx.werr != nil {
		return tx.abort(tx.werr)
	}
	// A process that ignores the lock may have removed or replaced the
	// metadata file since Begin: writing to the orphan would be lost, and
	// others locking the path no longer wait for us.
	if err := tx.lk.Verify(); err != nil {
		return tx.abort(err)
	}
	if tx.stage != nil {
		if err := tx.buf.Flush(); err != nil {
			return tx.abort(&Error{Op: "write data", Path: tx.stage.name(), Err: err})
		}
	}
	switch {
	case tx.meta == nil && tx.stage == nil:
		tx.committed = true
		return tx.release()
	case tx.meta == nil:
		return tx.commitData()
	}
	return tx.commitPair()
}

// commitData replaces the data file alone. One rename is atomic by itself,
// so no record is needed.
func (tx *Tx) commitData() error {
	c, full := &tx.cfg, tx.cfg.durability == Full
	if err := c.step(StepRenameData); err != nil {
		return tx.abort(err)
	}
	if err := tx.stage.replace(full, full); err != nil {
		return tx.abort(err)
	}
	return tx.settle(false)
}

// commitPair is the full protocol; see the package documentation and the
// Step constants for the order.
func (tx *Tx) commitPair() error {
	c, p, full := &tx.cfg, &tx.p, tx.cfg.durability == Full
	rec := &record{hasMeta: true, meta: tx.meta.Bytes(), dataBase: filepath.Base(p.data)}
	if tx.stage != nil {
		f := tx.stage.file()
		fi, err := f.Stat()
		if err != nil {
			return tx.abort(err)
		}
		id, err := fsutil.InfoID(f, fi)
		if err != nil {
			return tx.abort(err)
		}
		rec.hasData, rec.dataSize, rec.tempID = true, fi.Size(), id
		rec.hasSum, rec.dataSum = !full, tx.sum
		rec.tempName = filepath.Base(tx.stage.name())
	}

	// 1. Under Full, make the staged data durable before any record names
	// it: a durable record then always has durable data behind it. (Under
	// NoSync, the record's checksum of the data stands in for that.)
	if full && tx.stage != nil {
		if err := c.step(StepSyncData); err != nil {
			return tx.abort(err)
		}
		if err := tx.stage.file().Sync(); err != nil {
			return tx.abort(err)
		}
	}
	// 2. Write the record. First make sure what comes after the point of no
	// return can succeed: reserve the metadata file's space, so that the
	// in-place write cannot meet a full disk, and (on Windows) check that no
	// handle keeps the data file from being replaced.
	if err := c.step(StepWriteRecord); err != nil {
		return tx.abort(err)
	}
	if err := tx.lk.Reserve(int64(len(rec.meta))); err != nil {
		return tx.abort(err)
	}
	if tx.stage != nil {
		if err := replaceable(p.data); err != nil {
			return tx.abort(err)
		}
	}
	rf, err := os.OpenFile(p.record, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, c.perm)
	if err != nil {
		return tx.abort(err)
	}
	tx.hasRecord = true
	_, err = rf.Write(rec.encode())
	if err == nil {
		err = c.step(StepSyncRecord)
	}
	// 3. Make the record and its name durable.
	if err == nil && full {
		err = rf.Sync()
	}
	if err == nil && full {
		err = fsutil.SyncDir(filepath.Dir(p.record))
	}
	if cerr := rf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return tx.abort(err)
	}

	// The record is durable: from here on the commit happens, now or in
	// recovery.
	// 4. Rename the staged data over the data file. It was synced before
	// the record, so renameio's own sync-and-rename would only sync it again.
	if tx.stage != nil {
		if err := c.step(StepRenameData); err != nil {
			return tx.incomplete(err)
		}
		if err := tx.stage.replace(false, full); err != nil {
			return tx.incomplete(err)
		}
	}
	// 5. Rewrite the metadata in place through the locked handle.
	if err := c.step(StepWriteMeta); err != nil {
		return tx.incomplete(err)
	}
	if err := tx.lk.WriteAll(rec.meta); err != nil {
		return tx.incomplete(err)
	}
	return tx.settle(true)
}

// settle ends a commit whose changes are in place: it makes them durable
// (the metadata file if it was rewritten, the data file's directory if the
// data was renamed), then removes the record or intent. A record that
// reappears after a power loss is applied again, to the same effect, so its
// removal need not be durable.
func (tx *Tx) settle(metaWritten bool) error {
	c := &tx.cfg
	if err := c.step(StepSyncApplied); err != nil {
		return tx.incomplete(err)
	}
	if c.durability == Full {
		if metaWritten {
			if err := tx.lk.Sync(); err != nil {
				return tx.incomplete(err)
			}
		}
		if tx.stage != nil && !brokenDirSync {
			if err := fsutil.SyncDir(filepath.Dir(tx.p.data)); err != nil {
				return tx.incomplete(err)
			}
		}
	}
	if err := c.step(StepRemoveRecord); err != nil {
		return tx.incomplete(err)
	}
	if err := tx.removeRecord(); err != nil {
		return tx.incomplete(err)
	}
	return tx.finish()
}

// finish ends a successful commit.
func (tx *Tx) finish() error {
	tx.cfg.step(StepRelease) // nothing is left to fail: the error is moot
	tx.committed = true
	if err := tx.release(); err != nil {
		return &Error{Op: "commit", Path: tx.p.meta, Err: err}
	}
	return nil
}

// abort undoes a commit that failed before its record was durable: the
// staged file, then the record or intent, are removed, and the old pair
// stays.
func (tx *Tx) abort(err error) error {
	errs := []error{err}
	if tx.stage != nil {
		errs = append(errs, tx.stage.discard())
	}
	errs = append(errs, tx.removeRecord(), tx.release())
	var te *Error
	if errors.As(err, &te) && errors.Join(errs[1:]...) == nil {
		return err
	}
	return &Error{Op: "commit", Path: tx.p.meta, Err: errors.Join(errs...)}
}

// incomplete ends a commit that failed after its record was durable. The
// record and any staged file stay for recovery.
func (tx *Tx) incomplete(err error) error {
	if tx.stage != nil {
		tx.stage.close()
	}
	tx.committed = true
	rerr := tx.release()
	return &Error{Op: "commit", Path: tx.p.meta, Err: fmt.Errorf("%w: %w", ErrIncomplete, errors.Join(err, rerr))}
}

// Update runs fn in a transaction on the pair and commits it if fn returns
// nil. If fn returns an error or panics, the transaction is rolled back and
// the error returned or the panic resumed. fn must not call Commit or
// Rollback.
func Update(ctx context.Context, metaPath, dataPath string, fn func(*Tx) error, opts ...Option) (err error) {
	tx, err := BeginContext(ctx, metaPath, dataPath, opts...)
	if err != nil {
		return err
	}
	tx.managed = true
	defer func() {
		if !tx.done {
			tx.rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	tx.managed = false
	return tx.Commit()
}
