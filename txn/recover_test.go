package txn_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/lock"
	"github.com/txnpair/txnpair/txn"
)

var errInjected = errors.New("injected failure")

// failAt returns a hook that fails step s.
func failAt(s txn.Step) txn.Option {
	return txn.WithStepHook(func(got txn.Step) error {
		if got == s {
			return errInjected
		}
		return nil
	})
}

// commitSteps is the order of a commit that replaces both files.
var commitSteps = []txn.Step{
	txn.StepSyncData, txn.StepWriteRecord, txn.StepSyncRecord, txn.StepRenameData,
	txn.StepWriteMeta, txn.StepSyncApplied, txn.StepRemoveRecord, txn.StepRelease,
}

func TestCommit_VisitsItsStepsInOrder(t *testing.T) {
	_, meta, data := pairPaths(t)
	var seen []txn.Step
	commit(t, meta, data, "m", "d", txn.WithStepHook(func(s txn.Step) error {
		seen = append(seen, s)
		return nil
	}))
	assert.Equal(t, commitSteps, seen)
	assert.Equal(t, commitSteps, txn.Steps()[:len(commitSteps)], "Steps lists the commit steps first, in order")
}

// TestCommit_FailureAtEveryStep injects a failure before each step of a
// commit. Before the record is durable the old pair stays and nothing is
// left behind; after it, Commit reports ErrIncomplete and the next Read
// completes the commit.
func TestCommit_FailureAtEveryStep(t *testing.T) {
	pastPointOfNoReturn := false
	for _, s := range commitSteps {
		if s == txn.StepRenameData {
			pastPointOfNoReturn = true
		}
		for _, d := range []txn.Durability{txn.Full, txn.NoSync} {
			if s == txn.StepSyncData && d == txn.NoSync {
				continue // NoSync syncs nothing
			}
			t.Run(string(s)+"/"+d.String(), func(t *testing.T) {
				dir, meta, data := pairPaths(t)
				commit(t, meta, data, "old meta, longer than the new", "old data")
				tx, err := txn.Begin(meta, data, failAt(s), txn.WithDurability(d))
				require.NoError(t, err)
				io.WriteString(tx.Meta(), "new meta")
				io.WriteString(tx.Data(), "new data")
				err = tx.Commit()
				switch {
				case s == txn.StepRelease:
					assert.NoError(t, err, "nothing is left to fail at release")
				case pastPointOfNoReturn:
					assert.ErrorIs(t, err, errInjected)
					assert.ErrorIs(t, err, txn.ErrIncomplete)
				default:
					assert.ErrorIs(t, err, errInjected)
					assert.NotErrorIs(t, err, txn.ErrIncomplete)
					assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
				}
				assert.ErrorIs(t, tx.Commit(), txn.ErrTxDone)
				if pastPointOfNoReturn {
					assertPair(t, meta, data, "new meta", "new data")
				} else {
					assertPair(t, meta, data, "old meta, longer than the new", "old data")
				}
				assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
			})
		}
	}
}

func TestCommit_DataOnlyFailureAtEveryStep(t *testing.T) {
	for _, s := range []txn.Step{txn.StepRenameData, txn.StepSyncApplied} {
		t.Run(string(s), func(t *testing.T) {
			dir, meta, data := pairPaths(t)
			commit(t, meta, data, "m", "old")
			tx, err := txn.Begin(meta, data, failAt(s))
			require.NoError(t, err)
			io.WriteString(tx.Data(), "new")
			err = tx.Commit()
			assert.ErrorIs(t, err, errInjected)
			if s == txn.StepRenameData {
				assert.NotErrorIs(t, err, txn.ErrIncomplete)
				assertPair(t, meta, data, "m", "old")
			} else {
				assert.ErrorIs(t, err, txn.ErrIncomplete, "the rename happened; only its sync failed")
				assertPair(t, meta, data, "m", "new")
			}
			assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
		})
	}
}

// interrupted leaves a pair whose commit from (m1, d1) to (m2, d2) stopped
// just before step s, with its record durable.
func interrupted(t *testing.T, s txn.Step, replaceData bool, opts ...txn.Option) (dir, meta, data string) {
	t.Helper()
	dir, meta, data = pairPaths(t)
	commit(t, meta, data, "m1 is the longer metadata", "d1")
	tx, err := txn.Begin(meta, data, append(opts, failAt(s))...)
	require.NoError(t, err)
	io.WriteString(tx.Meta(), "m2")
	if replaceData {
		io.WriteString(tx.Data(), "d2")
	}
	require.ErrorIs(t, tx.Commit(), txn.ErrIncomplete)
	_, err = os.Stat(fsutil.RecordPath(meta))
	require.NoError(t, err, "the record stays for recovery")
	return dir, meta, data
}

func TestRecover_RollsForwardFromEveryInterruptedStep(t *testing.T) {
	for _, s := range []txn.Step{txn.StepRenameData, txn.StepWriteMeta, txn.StepSyncApplied, txn.StepRemoveRecord} {
		for _, replaceData := range []bool{true, false} {
			if s == txn.StepRenameData && !replaceData {
				continue
			}
			name := string(s) + "/meta-only"
			if replaceData {
				name = string(s) + "/pair"
			}
			t.Run(name, func(t *testing.T) {
				dir, meta, data := interrupted(t, s, replaceData)
				log, buf := logBuffer()
				rec, err := txn.Recover(context.Background(), meta, data, txn.WithLogger(log))
				require.NoError(t, err)
				assert.True(t, rec.RolledForward)
				assert.Contains(t, buf.String(), "completed a commit")
				wantData := "d1"
				if replaceData {
					wantData = "d2"
				}
				assertPair(t, meta, data, "m2", wantData)
				assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
				// Recovery is idempotent: a second run finds nothing.
				rec, err = txn.Recover(context.Background(), meta, data)
				require.NoError(t, err)
				assert.Equal(t, txn.Recovery{}, rec)
			})
		}
	}
}

func TestRead_RecoversAPendingCommit(t *testing.T) {
	dir, meta, data := interrupted(t, txn.StepWriteMeta, true)
	assertPair(t, meta, data, "m2", "d2")
	assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
}

// TestRecover_FailureAtEveryRecoveryStep fails recovery before each of its
// steps, then recovers again: the result is the new pair either way.
func TestRecover_FailureAtEveryRecoveryStep(t *testing.T) {
	for _, s := range []txn.Step{txn.StepRecoverSyncRecord, txn.StepRecoverRenameData, txn.StepRecoverWriteMeta, txn.StepRecoverSyncApplied, txn.StepRecoverRemoveRecord} {
		t.Run(string(s), func(t *testing.T) {
			dir, meta, data := interrupted(t, txn.StepRenameData, true)
			_, err := txn.Begin(meta, data, failAt(s))
			require.ErrorIs(t, err, errInjected)
			assertPair(t, meta, data, "m2", "d2")
			assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
		})
	}
}

func TestRecover_DiscardsATornRecord(t *testing.T) {
	dir, meta, data := interrupted(t, txn.StepRenameData, true)
	rp := fsutil.RecordPath(meta)
	b, err := os.ReadFile(rp)
	require.NoError(t, err)
	for _, torn := range [][]byte{b[:len(b)-1], b[:len(b)/2], {}, append(slices.Clone(b[:len(b)-1]), b[len(b)-1]^1)} {
		require.NoError(t, os.WriteFile(rp, torn, 0o644))
		log, buf := logBuffer()
		rec, err := txn.Recover(context.Background(), meta, data, txn.WithLogger(log))
		require.NoError(t, err)
		assert.True(t, rec.Discarded)
		assert.Contains(t, buf.String(), "discarded")
		assertPair(t, meta, data, "m1 is the longer metadata", "d1")
		assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
		// Recreate the staged file the record named, for the next round.
		dir, meta, data = interrupted(t, txn.StepRenameData, true)
		rp = fsutil.RecordPath(meta)
	}
}

func TestRecover_RemovesStagedLeftoversOnly(t *testing.T) {
	dir, meta, data := interrupted(t, txn.StepRemoveRecord, true)
	ours := []string{"." + filepath.Base(data) + "123", "." + filepath.Base(data) + "9876543210"}
	theirs := []string{"." + filepath.Base(data) + "x1", filepath.Base(data) + "123", "other.json", "." + filepath.Base(data)}
	for _, n := range append(slices.Clone(ours), theirs...) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("junk"), 0o644))
	}
	rec, err := txn.Recover(context.Background(), meta, data)
	require.NoError(t, err)
	assert.Len(t, rec.RemovedTemps, len(ours))
	assertPair(t, meta, data, "m2", "d2")
	assertOnlyPair(t, dir, append([]string{filepath.Base(meta), filepath.Base(data)}, theirs...)...)
}

func TestRecover_RefusesARecordForAnotherDataFile(t *testing.T) {
	dir, meta, data := interrupted(t, txn.StepRenameData, true)
	other := filepath.Join(dir, "other.json")
	_, err := txn.Begin(meta, other)
	assert.ErrorIs(t, err, txn.ErrForeignRecord)
	_, err = os.Stat(fsutil.RecordPath(meta))
	assert.NoError(t, err, "the record is left for its own pair")
	assertPair(t, meta, data, "m2", "d2")
}

// TestRecover_DiscardsARecordWhoseStagedDataIsDamaged: a record whose staged
// data is gone, cut short, or (under NoSync, where nothing is synced and the
// record carries a checksum) holds other bytes of the same size — what a power
// loss can leave of data that was not yet durable — never became a commit:
// recovery discards it and keeps the old pair. (Under Full the data is synced
// before the record is written.)
func TestRecover_DiscardsARecordWhoseStagedDataIsDamaged(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   []txn.Option
		damage func(staged string) error
	}{
		{"lost", nil, os.Remove},
		{"torn", nil, func(p string) error { return os.Truncate(p, 0) }},
		{"corrupt", []txn.Option{txn.WithDurability(txn.NoSync)},
			func(p string) error { return os.WriteFile(p, []byte("\x00\x00"), 0o644) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, meta, data := interrupted(t, txn.StepRenameData, true, c.opts...)
			staged, err := fsutil.TempNames(data)
			require.NoError(t, err)
			require.Len(t, staged, 1)
			require.NoError(t, c.damage(staged[0]))
			rec, err := txn.Recover(context.Background(), meta, data)
			require.NoError(t, err)
			assert.True(t, rec.Discarded)
			assertPair(t, meta, data, "m1 is the longer metadata", "d1")
			assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
		})
	}
}

func TestBegin_WithoutARecordDoesNotScanForLeftovers(t *testing.T) {
	dir, meta, data := pairPaths(t)
	commit(t, meta, data, "m", "d")
	// A file named like a staged file but with no record: no transaction of
	// ours can have left it (each writes its intent first), so it stays.
	stray := filepath.Join(dir, "."+filepath.Base(data)+"42")
	require.NoError(t, os.WriteFile(stray, nil, 0o644))
	rec, err := txn.Recover(context.Background(), meta, data)
	require.NoError(t, err)
	assert.Empty(t, rec.RemovedTemps)
	_, err = os.Stat(stray)
	assert.NoError(t, err)
}

func TestData_WritesAnIntentBeforeStaging(t *testing.T) {
	dir, meta, data := pairPaths(t)
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	defer tx.Rollback()
	_, err = os.Stat(fsutil.RecordPath(meta))
	assert.ErrorIs(t, err, os.ErrNotExist, "no record before anything is staged")
	tx.Data()
	_, err = os.Stat(fsutil.RecordPath(meta))
	assert.NoError(t, err, "the intent exists once data is staged")
	require.NoError(t, tx.Rollback())
	assertOnlyPair(t, dir, filepath.Base(meta))
}

func TestCommit_RefusesWhenTheMetadataFileWasRemoved(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows does not remove a file that the lock's handle holds open, so this cannot happen there")
	}
	dir, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1")
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	// A cache cleaner that ignores the lock removes the metadata file.
	require.NoError(t, os.Remove(meta))
	io.WriteString(tx.Meta(), "m2")
	io.WriteString(tx.Data(), "d2")
	err = tx.Commit()
	assert.ErrorIs(t, err, lock.ErrStale)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.NotErrorIs(t, err, txn.ErrIncomplete)
	got, err := os.ReadFile(data)
	require.NoError(t, err)
	assert.Equal(t, "d1", string(got), "nothing was committed to an orphaned metadata file")
	assertOnlyPair(t, dir, filepath.Base(data))
}
