package txn

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/txnpair/txnpair/fsutil"
)

// Recovery says what recovery found and did at Begin, Read or View.
type Recovery struct {
	// RolledForward: a commit record was found and applied; the pair is
	// the one that commit wrote.
	RolledForward bool
	// Discarded: a commit record was found that had never become a commit
	// (torn, or its staged data never reached the data file) and was
	// removed; the pair is the old one.
	Discarded bool
	// RemovedTemps lists the staged files of unfinished transactions that
	// were removed.
	RemovedTemps []string
}

// Recover runs recovery on the pair under the exclusive lock and reports what
// it did. Begin, Read and View recover on their own; Recover is for tools.
func Recover(ctx context.Context, metaPath, dataPath string, opts ...Option) (Recovery, error) {
	tx, err := BeginContext(ctx, metaPath, dataPath, opts...)
	if err != nil {
		return Recovery{}, err
	}
	rec := tx.rec
	return rec, tx.Rollback()
}

// recover brings the pair to a committed state. It runs under the exclusive
// lock and is idempotent: each step checks the state the previous one left,
// so a crash at any point is recovered by the next run. Without a record
// there is nothing to recover, and it costs one failed open.
func (tx *Tx) recover() error {
	c, p := &tx.cfg, &tx.p
	fail := func(err error) error { return &Error{Op: "recover", Path: p.meta, Err: err} }
	b, err := os.ReadFile(p.record)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fail(err)
	}
	committed, why, err := tx.applyRecord(b)
	if err != nil {
		return fail(err)
	}
	// Staged files of transactions that never committed (a record that is
	// only an intent, or is discarded), and any other strays.
	names, err := fsutil.TempNames(p.data)
	if err != nil {
		return fail(err)
	}
	if len(names) > 0 {
		if err := c.step(StepRecoverRemoveTemps); err != nil {
			return fail(err)
		}
		removed, err := fsutil.RemoveFiles(names)
		tx.rec.RemovedTemps = removed
		if len(removed) > 0 {
			c.logger.Info("txnpair: removed staged files of unfinished transactions", "meta", p.meta, "files", removed)
		}
		if err != nil {
			return fail(err)
		}
	}
	step := StepRecoverDiscard
	if committed {
		step = StepRecoverRemoveRecord
	}
	if err := c.step(step); err != nil {
		return fail(err)
	}
	if err := os.Remove(p.record); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	switch {
	case committed:
		tx.rec.RolledForward = true
		c.logger.Info("txnpair: completed a commit interrupted by a crash", "meta", p.meta, "data", p.data)
	case why != "":
		tx.rec.Discarded = true
		c.logger.Warn("txnpair: discarded a commit record that never committed; the pair is the old one",
			"meta", p.meta, "data", p.data, "reason", why)
	}
	return nil
}

// applyRecord rolls the record b forward and reports committed, or, if it
// never became a commit, reports why not ("" for the intent of a transaction
// that was staging). It leaves removing the record to its caller.
func (tx *Tx) applyRecord(b []byte) (committed bool, why string, err error) {
	c, p, full := &tx.cfg, &tx.p, tx.cfg.durability == Full
	rec, err := decodeRecord(b)
	if err != nil {
		return false, err.Error(), nil
	}
	if rec.intent {
		return false, "", nil
	}
	if rec.dataBase != filepath.Base(p.data) {
		return false, "", fmt.Errorf("%w: the record is for %q, not %q", ErrForeignRecord, rec.dataBase, filepath.Base(p.data))
	}
	// The commit that wrote the record may have died before syncing it (a
	// crash before its point of no return): make it durable before changing
	// anything, or a power loss during recovery could keep the changes and
	// lose the record that explains them. The staged file is synced before
	// its rename below.
	if err := c.step(StepRecoverSyncRecord); err != nil {
		return false, "", err
	}
	if full {
		if err := syncFile(p.record); err != nil {
			return false, "", err
		}
		if err := fsutil.SyncDir(filepath.Dir(p.record)); err != nil {
			return false, "", err
		}
	}
	if rec.hasData {
		staged := filepath.Join(filepath.Dir(p.data), rec.tempName)
		fi, err := os.Lstat(staged)
		switch {
		case err == nil:
			id, err := fsutil.PathID(staged)
			if err != nil {
				return false, "", err
			}
			if fi.Size() != rec.dataSize || id != rec.tempID {
				// The staged file was torn by a power loss before it
				// was durable; the rename never happened, so the pair
				// is the old one.
				return false, "the staged data file does not match the record", nil
			}
			if rec.hasSum {
				if ok, err := stagedIntact(staged, rec.dataSum); err != nil {
					return false, "", err
				} else if !ok {
					return false, "the staged data file fails its checksum", nil
				}
			}
			if err := c.step(StepRecoverRenameData); err != nil {
				return false, "", err
			}
			if err := replaceFile(staged, p.data, full); err != nil {
				return false, "", err
			}
		case errors.Is(err, fs.ErrNotExist):
			// Renamed already, or lost before the record was written.
			id, ierr := fsutil.PathID(p.data)
			dfi, serr := os.Stat(p.data)
			if ierr != nil || serr != nil || id != rec.tempID || dfi.Size() != rec.dataSize {
				return false, "the staged data file never reached the data file", nil
			}
		default:
			return false, "", err
		}
	}
	if rec.hasMeta {
		if err := c.step(StepRecoverWriteMeta); err != nil {
			return false, "", err
		}
		if err := tx.lk.WriteAll(rec.meta); err != nil {
			return false, "", err
		}
	}
	if err := c.step(StepRecoverSyncApplied); err != nil {
		return false, "", err
	}
	if full {
		if err := tx.lk.Sync(); err != nil {
			return false, "", err
		}
		if rec.hasData {
			if err := fsutil.SyncDir(filepath.Dir(p.data)); err != nil {
				return false, "", err
			}
		}
	}
	return true, "", nil
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// stagedIntact reports whether the staged file at path has the checksum the
// record gave it.
func stagedIntact(path string, sum uint32) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	got, err := checksum(f)
	if err != nil {
		return false, err
	}
	return got == sum, nil
}
