package txn_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/lock"
	"github.com/txnpair/txnpair/txn"
)

// A badEnv is the pair a bad-input case works on: oldPair at meta and data
// in dir, unless the case's setup moves it.
type badEnv struct{ dir, meta, data string }

// A badCase is one bad input or failing filesystem. op returns the error
// under test; it must satisfy errors.Is for every error in is (none: op must
// succeed) and, unless plain is set, be a *txn.Error. Afterwards the pair
// must read as want (oldPair if unset) and the directory must hold exactly
// what it held before op: no staged file, no record, nothing created.
type badCase struct {
	name  string
	setup func(t *testing.T, e *badEnv)
	op    func(t *testing.T, e *badEnv) error
	is    []error
	plain bool    // the error need not be a *txn.Error
	want  version // the pair afterwards; oldPair if zero
	gone  bool    // op removes the directory: nothing is left to check
	// check, if set, replaces the check of the pair's content.
	check func(t *testing.T, e *badEnv)
}

// badMemLimit bounds the memory a streamed huge write may allocate.
const (
	hugeSize    = 64 << 20
	badMemLimit = 16 << 20
)

// lockWaitForCase is how long a case waits for a lock it knows is held.
const lockWaitForCase = 50 * time.Millisecond

func badCases() []badCase {
	ctx := context.Background()
	begin := func(e *badEnv, meta, data string) error {
		tx, err := txn.Begin(meta, data)
		if err == nil {
			tx.Rollback()
			return errors.New("Begin accepted it")
		}
		return err
	}
	symlink := func(t *testing.T, target, link string) {
		if err := os.Symlink(target, link); err != nil {
			t.Skipf("cannot create symbolic links here: %v", err)
		}
		fi, err := os.Lstat(link)
		if underWine() && (err != nil || fi.Mode()&fs.ModeSymlink == 0) {
			os.Remove(link)
			t.Skip("Wine differs from Windows: its os.Symlink reports success and makes no symbolic link")
		}
		require.NoError(t, err)
		require.NotZero(t, fi.Mode()&fs.ModeSymlink, "os.Symlink made no symbolic link")
	}
	cases := []badCase{
		{name: "empty metadata path", is: []error{txn.ErrInvalidPath},
			op: func(t *testing.T, e *badEnv) error { return begin(e, "", e.data) }},
		{name: "empty data path", is: []error{txn.ErrInvalidPath},
			op: func(t *testing.T, e *badEnv) error { return begin(e, e.meta, "") }},
		{name: "metadata path equals data path", is: []error{txn.ErrSameFile},
			op: func(t *testing.T, e *badEnv) error { return begin(e, e.data, e.data) }},
		{name: "same absent file twice", is: []error{txn.ErrSameFile},
			op: func(t *testing.T, e *badEnv) error {
				p := filepath.Join(e.dir, "absent.json")
				return begin(e, p, e.dir+"/./absent.json")
			}},
		{name: "same file through a symbolic link", is: []error{txn.ErrSameFile},
			setup: func(t *testing.T, e *badEnv) { symlink(t, e.data, filepath.Join(e.dir, "link")) },
			op:    func(t *testing.T, e *badEnv) error { return begin(e, filepath.Join(e.dir, "link"), e.data) }},
		{name: "same file through a hard link", is: []error{txn.ErrSameFile},
			setup: func(t *testing.T, e *badEnv) { require.NoError(t, os.Link(e.data, filepath.Join(e.dir, "hard"))) },
			op:    func(t *testing.T, e *badEnv) error { return begin(e, filepath.Join(e.dir, "hard"), e.data) }},
		{name: "metadata path is a directory", is: []error{txn.ErrInvalidPath},
			op: func(t *testing.T, e *badEnv) error { return begin(e, e.dir, e.data) }},
		{name: "data path is a directory", is: []error{txn.ErrInvalidPath},
			op: func(t *testing.T, e *badEnv) error { return begin(e, e.meta, e.dir) }},
		{name: "data path is a symbolic link to a directory", is: []error{txn.ErrInvalidPath},
			setup: func(t *testing.T, e *badEnv) { symlink(t, e.dir, filepath.Join(e.dir, "dirlink")) },
			op:    func(t *testing.T, e *badEnv) error { return begin(e, e.meta, filepath.Join(e.dir, "dirlink")) }},
		{name: "dangling symbolic link", is: []error{txn.ErrInvalidPath},
			setup: func(t *testing.T, e *badEnv) {
				symlink(t, filepath.Join(e.dir, "nowhere"), filepath.Join(e.dir, "dangling"))
			},
			op: func(t *testing.T, e *badEnv) error { return begin(e, e.meta, filepath.Join(e.dir, "dangling")) }},
		{name: "data path is the commit record", is: []error{txn.ErrInvalidPath},
			op: func(t *testing.T, e *badEnv) error { return begin(e, e.meta, fsutil.RecordPath(e.meta)) }},
		{name: "missing parent directory", is: []error{fs.ErrNotExist},
			op: func(t *testing.T, e *badEnv) error {
				return begin(e, e.meta, filepath.Join(e.dir, "missing", "k.json"))
			}},
		{name: "missing parent directory on Read", is: []error{fs.ErrNotExist},
			op: func(t *testing.T, e *badEnv) error {
				_, _, err := txn.Read(ctx, filepath.Join(e.dir, "missing", "k.info.json"), e.data)
				return err
			}},
		{name: "path component is a file", is: []error{syscall.ENOTDIR},
			op: func(t *testing.T, e *badEnv) error { return begin(e, filepath.Join(e.data, "k.info.json"), e.data) }},
		{name: "Read with a cancelled context", is: []error{context.Canceled}, plain: true,
			op: func(t *testing.T, e *badEnv) error {
				c, cancel := context.WithCancel(ctx)
				cancel()
				_, _, err := txn.Read(c, e.meta, e.data)
				return err
			}},
		{name: "Begin past its deadline while the pair is locked", is: []error{context.DeadlineExceeded},
			op: func(t *testing.T, e *badEnv) error {
				holder, err := txn.Begin(e.meta, e.data)
				require.NoError(t, err)
				defer holder.Rollback()
				c, cancel := context.WithTimeout(ctx, lockWaitForCase)
				defer cancel()
				tx, err := txn.BeginContext(c, e.meta, e.data)
				if err == nil {
					tx.Rollback()
				}
				var le *lock.Error
				assert.True(t, errors.As(err, &le), "not a *lock.Error: %v", err)
				return err
			}},
		{name: "Commit after Commit", is: []error{txn.ErrTxDone},
			op: func(t *testing.T, e *badEnv) error {
				tx := mustBegin(t, e)
				require.NoError(t, tx.Commit())
				return tx.Commit()
			}},
		{name: "Rollback after Rollback", is: []error{txn.ErrTxDone},
			op: func(t *testing.T, e *badEnv) error {
				tx := mustBegin(t, e)
				require.NoError(t, tx.Rollback())
				return tx.Rollback()
			}},
		{name: "Rollback after Commit is a no-op",
			op: func(t *testing.T, e *badEnv) error {
				tx := mustBegin(t, e)
				require.NoError(t, tx.Commit())
				return tx.Rollback()
			}},
		{name: "data write after Rollback", is: []error{txn.ErrTxDone},
			op: func(t *testing.T, e *badEnv) error {
				tx := mustBegin(t, e)
				w := tx.Data()
				_, err := w.Write([]byte("x"))
				require.NoError(t, err)
				require.NoError(t, tx.Rollback())
				_, err = w.Write([]byte("y"))
				return err
			}},
		{name: "metadata write after Commit", is: []error{txn.ErrTxDone},
			op: func(t *testing.T, e *badEnv) error {
				tx := mustBegin(t, e)
				require.NoError(t, tx.Commit())
				_, err := tx.Meta().Write([]byte("{}"))
				return err
			}},
		{name: "every method after Commit", is: []error{txn.ErrTxDone},
			op: func(t *testing.T, e *badEnv) error {
				tx := mustBegin(t, e)
				require.NoError(t, tx.Commit())
				_, e1 := tx.ReadMeta()
				_, e2 := tx.OpenData()
				_, e3 := tx.DataInfo()
				_, e4 := tx.Data().Write([]byte("x"))
				for _, err := range []error{e1, e2, e3, e4} {
					assert.ErrorIs(t, err, txn.ErrTxDone)
				}
				return e1
			}},
		{name: "Commit inside Update", is: []error{txn.ErrTxManaged},
			op: func(t *testing.T, e *badEnv) error {
				return txn.Update(ctx, e.meta, e.data, func(tx *txn.Tx) error {
					tx.Data().Write(newPair.data)
					return tx.Commit()
				})
			}},
		{name: "Update whose function fails", is: []error{errCaseFailed}, plain: true,
			op: func(t *testing.T, e *badEnv) error {
				return txn.Update(ctx, e.meta, e.data, func(tx *txn.Tx) error {
					tx.Meta().Write(newPair.meta)
					tx.Data().Write(newPair.data)
					return errCaseFailed
				})
			}},
		{name: "Update whose function panics", is: []error{errCaseFailed}, plain: true,
			op: func(t *testing.T, e *badEnv) (err error) {
				defer func() {
					if v := recover(); v != nil {
						err = fmt.Errorf("%w: %v", errCaseFailed, v)
					}
				}()
				txn.Update(ctx, e.meta, e.data, func(tx *txn.Tx) error {
					tx.Meta().Write(newPair.meta)
					tx.Data().Write(newPair.data)
					panic("the function panicked")
				})
				return errors.New("the panic did not propagate")
			}},
		{name: "step fails before the record is durable", is: []error{errCaseFailed},
			op: func(t *testing.T, e *badEnv) error {
				return failAt(t, e, txn.StepSyncRecord)
			}},
		{name: "step fails after the record is durable", is: []error{txn.ErrIncomplete, errCaseFailed},
			want: newPair,
			op: func(t *testing.T, e *badEnv) error {
				return failAt(t, e, txn.StepWriteMeta)
			}},
		{name: "recovery step fails", is: []error{errCaseFailed},
			want: newPair,
			op: func(t *testing.T, e *badEnv) error {
				require.ErrorIs(t, failAt(t, e, txn.StepRenameData), txn.ErrIncomplete)
				_, _, err := txn.Read(ctx, e.meta, e.data, txn.WithStepHook(func(s txn.Step) error {
					if s == txn.StepRecoverWriteMeta {
						return errCaseFailed
					}
					return nil
				}))
				return err
			}},
		{name: "commit record for another data file", is: []error{txn.ErrForeignRecord},
			setup: func(t *testing.T, e *badEnv) {
				other := filepath.Join(e.dir, "other.json")
				require.ErrorIs(t, failAt(t, &badEnv{dir: e.dir, meta: e.meta, data: other}, txn.StepRenameData), txn.ErrIncomplete)
			},
			op: func(t *testing.T, e *badEnv) error { return begin(e, e.meta, e.data) },
			check: func(t *testing.T, e *badEnv) {
				_, _, err := txn.Read(ctx, e.meta, e.data)
				assert.ErrorIs(t, err, txn.ErrForeignRecord, "Read")
				m, err := os.ReadFile(e.meta)
				require.NoError(t, err)
				d, err := os.ReadFile(e.data)
				require.NoError(t, err)
				assert.True(t, oldPair.equal(version{meta: m, data: d}), "the foreign record was applied")
			}},
		{name: "directory removed mid-transaction", is: []error{fs.ErrNotExist}, gone: true,
			op: func(t *testing.T, e *badEnv) error {
				if runtime.GOOS == "windows" {
					t.Skip("Windows removes no file that a handle has open without delete sharing: the transaction's locked metadata file keeps the directory")
				}
				tx := mustBegin(t, e)
				defer tx.Rollback()
				tx.Meta().Write(newPair.meta)
				_, err := tx.Data().Write(newPair.data)
				require.NoError(t, err)
				require.NoError(t, removeTree(e.dir))
				err = tx.Commit()
				_, serr := os.Stat(e.dir)
				assert.ErrorIs(t, serr, fs.ErrNotExist, "the failed commit recreated the directory")
				return err
			}},
		{name: "huge data streamed in bounded memory", want: version{meta: newPair.meta},
			op: func(t *testing.T, e *badEnv) error {
				if testing.Short() {
					t.Skip("-short: no huge write")
				}
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				tx := mustBegin(t, e)
				defer tx.Rollback()
				chunk := make([]byte, 1<<20)
				w := tx.Data()
				for range hugeSize / len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return err
					}
				}
				tx.Meta().Write(newPair.meta)
				if err := tx.Commit(); err != nil {
					return err
				}
				runtime.ReadMemStats(&after)
				assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(badMemLimit), "a streamed write allocated in proportion to its size")
				fi, err := os.Stat(e.data)
				require.NoError(t, err)
				assert.EqualValues(t, hugeSize, fi.Size())
				// The pair check reads the whole file: make it small again.
				return txn.Update(ctx, e.meta, e.data, func(tx *txn.Tx) error {
					_, err := tx.Data().Write(nil)
					return err
				})
			}},
	}
	return append(cases, platformBadCases()...)
}

var errCaseFailed = errors.New("failed on purpose")

func mustBegin(t *testing.T, e *badEnv) *txn.Tx {
	t.Helper()
	tx, err := txn.Begin(e.meta, e.data)
	require.NoError(t, err)
	return tx
}

// failAt commits newPair over the pair with a hook that fails step s.
func failAt(t *testing.T, e *badEnv, s txn.Step) error {
	tx, err := txn.Begin(e.meta, e.data, txn.WithStepHook(func(got txn.Step) error {
		if got == s {
			return errCaseFailed
		}
		return nil
	}))
	require.NoError(t, err)
	defer tx.Rollback()
	tx.Meta().Write(newPair.meta)
	tx.Data().Write(newPair.data)
	return tx.Commit()
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestBadInputFailsCleanly runs every bad-input case: each must fail with a
// typed error, leave the pair as it was (or, for the cases that commit, as
// the commit made it) and leave nothing behind.
func TestBadInputFailsCleanly(t *testing.T) {
	cases := badCases()
	require.GreaterOrEqual(t, len(cases), 20)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &badEnv{dir: tempDir(t)}
			e.meta, e.data = pairIn(e.dir)
			writePair(t, e.meta, e.data, oldPair)
			if c.setup != nil {
				c.setup(t, e)
			}
			before := listDir(t, e.dir)
			err := c.op(t, e)
			if len(c.is) == 0 {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				for _, target := range c.is {
					assert.ErrorIs(t, err, target)
				}
				var te *txn.Error
				if !c.plain {
					assert.True(t, errors.As(err, &te), "not a *txn.Error: %T %v", err, err)
				}
				t.Logf("error: %v", err)
			}
			if c.gone {
				return
			}
			if c.check != nil {
				c.check(t, e)
			} else {
				want := c.want
				if want.meta == nil && want.data == nil {
					want = oldPair
				}
				got := readPair(t, e.meta, e.data)
				assert.True(t, got.equal(want), "the pair is %v, want %v", got, want)
			}
			after := listDir(t, e.dir)
			slices.Sort(before)
			slices.Sort(after)
			assert.Equal(t, before, after, "the directory changed")
		})
	}
}
