package txn_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/txn"
)

// pairPaths returns a metadata and a data path in a new directory.
func pairPaths(t *testing.T) (dir, meta, data string) {
	t.Helper()
	dir = testDir(t)
	return dir, filepath.Join(dir, "497deca9.info.json"), filepath.Join(dir, "497deca9.json")
}

// commit writes a pair through Update.
func commit(t *testing.T, meta, data, m, d string, opts ...txn.Option) {
	t.Helper()
	require.NoError(t, txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		_, err := io.WriteString(tx.Meta(), m)
		require.NoError(t, err)
		_, err = io.WriteString(tx.Data(), d)
		require.NoError(t, err)
		return nil
	}, opts...))
}

// assertPair checks the committed pair through Read.
func assertPair(t *testing.T, meta, data, m, d string) {
	t.Helper()
	gm, gd, err := txn.Read(context.Background(), meta, data)
	require.NoError(t, err)
	assert.Equal(t, m, string(gm), "metadata")
	assert.Equal(t, d, string(gd), "data")
}

// assertOnlyPair checks that dir holds nothing but the pair: no staged file,
// no record.
func assertOnlyPair(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := slices.Clone(names)
	slices.Sort(want)
	assert.Equal(t, want, got, "directory holds only the pair")
}

func inode(t *testing.T, path string) fsutil.FileID {
	t.Helper()
	id, err := fsutil.PathID(path)
	require.NoError(t, err)
	return id
}

func TestUpdate_CommitsBothFiles(t *testing.T) {
	dir, meta, data := pairPaths(t)
	commit(t, meta, data, `{"etag": "a"}`, `{"packages": {}}`)
	assertPair(t, meta, data, `{"etag": "a"}`, `{"packages": {}}`)
	commit(t, meta, data, `{"etag": "b"}`, `{"packages": {"x": 1}}`)
	assertPair(t, meta, data, `{"etag": "b"}`, `{"packages": {"x": 1}}`)
	assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
}

func TestCommit_NoSyncCommitsToo(t *testing.T) {
	dir, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1", txn.WithDurability(txn.NoSync))
	commit(t, meta, data, "m2", "d2", txn.WithDurability(txn.NoSync))
	assertPair(t, meta, data, "m2", "d2")
	assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
}

func TestCommit_KeepsMetadataInode(t *testing.T) {
	_, meta, data := pairPaths(t)
	commit(t, meta, data, "first, a longer metadata", "d1")
	before := inode(t, meta)
	dataBefore := inode(t, data)
	commit(t, meta, data, "second", "d2")
	assert.Equal(t, before, inode(t, meta), "the metadata file is rewritten in place, never replaced")
	assert.NotEqual(t, dataBefore, inode(t, data), "the data file is replaced by rename")
	assertPair(t, meta, data, "second", "d2")
}

func TestCommit_MetaOnlyKeepsData(t *testing.T) {
	dir, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1")
	dataID := inode(t, data)
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	_, err = io.WriteString(tx.Meta(), "m2")
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	assertPair(t, meta, data, "m2", "d1")
	assert.Equal(t, dataID, inode(t, data), "a metadata-only commit leaves the data file alone")
	assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
}

func TestCommit_DataOnlyKeepsMeta(t *testing.T) {
	dir, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1")
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	_, err = io.WriteString(tx.Data(), "d2")
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	assertPair(t, meta, data, "m1", "d2")
	assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
}

func TestCommit_AskedWritersWithNothingWrittenEmptyTheFiles(t *testing.T) {
	_, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1")
	require.NoError(t, txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		tx.Meta()
		tx.Data()
		return nil
	}))
	assertPair(t, meta, data, "", "")
	fi, err := os.Stat(data)
	require.NoError(t, err)
	assert.Zero(t, fi.Size())
}

func TestCommit_NothingAskedChangesNothing(t *testing.T) {
	_, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1")
	ids := []fsutil.FileID{inode(t, meta), inode(t, data)}
	require.NoError(t, txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error { return nil }))
	assertPair(t, meta, data, "m1", "d1")
	assert.Equal(t, ids, []fsutil.FileID{inode(t, meta), inode(t, data)})
}

func TestTx_ReadsSeeCommittedNotStaged(t *testing.T) {
	_, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1")
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	defer tx.Rollback()
	io.WriteString(tx.Meta(), "m2")
	io.WriteString(tx.Data(), "d2")
	m, err := tx.ReadMeta()
	require.NoError(t, err)
	assert.Equal(t, "m1", string(m))
	r, err := tx.OpenData()
	require.NoError(t, err)
	d, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, "d1", string(d))
}

func TestTx_ReadsOfAMissingPairAreEmpty(t *testing.T) {
	_, meta, data := pairPaths(t)
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	defer tx.Rollback()
	m, err := tx.ReadMeta()
	require.NoError(t, err)
	assert.Empty(t, m)
	r, err := tx.OpenData()
	require.NoError(t, err)
	d, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Empty(t, d)
	_, err = tx.DataInfo()
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestTx_DataInfoIsWhatTheDataFileWillBe(t *testing.T) {
	_, meta, data := pairPaths(t)
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	_, err = tx.Data().Write(bytes.Repeat([]byte("x"), 100_000))
	require.NoError(t, err)
	staged, err := tx.DataInfo()
	require.NoError(t, err)
	io.WriteString(tx.Meta(), "m")
	require.NoError(t, tx.Commit())
	fi, err := os.Stat(data)
	require.NoError(t, err)
	assert.Equal(t, int64(100_000), fi.Size())
	assert.Equal(t, staged.Size(), fi.Size())
	assert.Equal(t, staged.ModTime(), fi.ModTime(), "the rename keeps the staged file's mtime, so conda's mtime_ns check can be filled in before Commit")
}

func TestRollback_KeepsOldPairAndLeavesNothing(t *testing.T) {
	dir, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1")
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	io.WriteString(tx.Meta(), "m2")
	io.WriteString(tx.Data(), "d2")
	require.NoError(t, tx.Rollback())
	assertPair(t, meta, data, "m1", "d1")
	assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
}

func TestTx_EveryMethodAfterTheEndIsErrTxDone(t *testing.T) {
	for _, end := range []string{"commit", "rollback"} {
		t.Run(end, func(t *testing.T) {
			_, meta, data := pairPaths(t)
			tx, err := txn.Begin(meta, data)
			require.NoError(t, err)
			if end == "commit" {
				require.NoError(t, tx.Commit())
				assert.NoError(t, tx.Rollback(), "Rollback after Commit is a no-op")
			} else {
				require.NoError(t, tx.Rollback())
				assert.ErrorIs(t, tx.Rollback(), txn.ErrTxDone)
			}
			assert.ErrorIs(t, tx.Commit(), txn.ErrTxDone)
			_, err = tx.Meta().Write([]byte("x"))
			assert.ErrorIs(t, err, txn.ErrTxDone)
			_, err = tx.Data().Write([]byte("x"))
			assert.ErrorIs(t, err, txn.ErrTxDone)
			_, err = tx.ReadMeta()
			assert.ErrorIs(t, err, txn.ErrTxDone)
			_, err = tx.OpenData()
			assert.ErrorIs(t, err, txn.ErrTxDone)
			_, err = tx.DataInfo()
			assert.ErrorIs(t, err, txn.ErrTxDone)
			var te *txn.Error
			assert.ErrorAs(t, tx.Commit(), &te)
		})
	}
}

func TestUpdate_RollsBackOnError(t *testing.T) {
	dir, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1")
	boom := errors.New("boom")
	err := txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		io.WriteString(tx.Meta(), "m2")
		io.WriteString(tx.Data(), "d2")
		return boom
	})
	assert.ErrorIs(t, err, boom)
	assertPair(t, meta, data, "m1", "d1")
	assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
}

func TestUpdate_RollsBackOnPanicAndRepanics(t *testing.T) {
	dir, meta, data := pairPaths(t)
	commit(t, meta, data, "m1", "d1")
	assert.PanicsWithValue(t, "boom", func() {
		txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
			io.WriteString(tx.Meta(), "m2")
			io.WriteString(tx.Data(), "d2")
			panic("boom")
		})
	})
	assertPair(t, meta, data, "m1", "d1")
	assertOnlyPair(t, dir, filepath.Base(meta), filepath.Base(data))
	// The lock was released: another transaction can begin at once.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx, err := txn.BeginContext(ctx, meta, data)
	require.NoError(t, err)
	tx.Rollback()
}

func TestUpdate_RefusesCommitAndRollbackInside(t *testing.T) {
	_, meta, data := pairPaths(t)
	require.NoError(t, txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		assert.ErrorIs(t, tx.Commit(), txn.ErrTxManaged)
		assert.ErrorIs(t, tx.Rollback(), txn.ErrTxManaged)
		io.WriteString(tx.Meta(), "m")
		return nil
	}))
	assertPair(t, meta, data, "m", "")
}

func TestBegin_ExcludesAnotherBegin(t *testing.T) {
	_, meta, data := pairPaths(t)
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = txn.BeginContext(ctx, meta, data)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, _, err = txn.Read(ctx, meta, data)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a reader waits for the writer")

	got := make(chan error, 1)
	go func() {
		_, _, err := txn.Read(context.Background(), meta, data)
		got <- err
	}()
	io.WriteString(tx.Meta(), "m")
	require.NoError(t, tx.Commit())
	assert.NoError(t, <-got)
}

func TestUpdate_GoroutinesNeverLoseAnUpdate(t *testing.T) {
	_, meta, data := pairPaths(t)
	const goroutines, each = 8, 25
	errs := make(chan error, goroutines)
	for range goroutines {
		go func() {
			for range each {
				err := txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
					m, err := tx.ReadMeta()
					if err != nil {
						return err
					}
					m = append(m, 'x')
					tx.Meta().Write(m)
					tx.Data().Write(m)
					return nil
				}, txn.WithDurability(txn.NoSync))
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range goroutines {
		require.NoError(t, <-errs)
	}
	want := strings.Repeat("x", goroutines*each)
	assertPair(t, meta, data, want, want)
}

func TestView_StreamsTheCommittedPair(t *testing.T) {
	_, meta, data := pairPaths(t)
	big := strings.Repeat("0123456789", 100_000)
	commit(t, meta, data, "m", big)
	var n int64
	err := txn.View(context.Background(), meta, data, func(m []byte, r io.Reader) error {
		assert.Equal(t, "m", string(m))
		var err error
		n, err = io.Copy(io.Discard, r)
		return err
	})
	require.NoError(t, err)
	assert.Equal(t, int64(len(big)), n)
}

func TestRead_MissingPairIsEmpty(t *testing.T) {
	_, meta, data := pairPaths(t)
	m, d, err := txn.Read(context.Background(), meta, data)
	require.NoError(t, err)
	assert.Empty(t, m)
	assert.Empty(t, d)
}

func TestBegin_RejectsBadPaths(t *testing.T) {
	dir := testDir(t)
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	meta := filepath.Join(dir, "k.info.json")
	require.NoError(t, os.WriteFile(meta, []byte("m"), 0o644))
	link := filepath.Join(dir, "link-to-meta")
	symlinks := makeSymlink(t, meta, link)
	hard := filepath.Join(dir, "hard-to-meta")
	require.NoError(t, os.Link(meta, hard))
	dangling := filepath.Join(dir, "dangling")
	symlinks = symlinks && makeSymlink(t, filepath.Join(dir, "nowhere"), dangling)
	data := filepath.Join(dir, "k.json")

	cases := []struct {
		name       string
		meta, data string
		want       error
		symlink    bool // the case needs real symbolic links
	}{
		{"empty metadata path", "", data, txn.ErrInvalidPath, false},
		{"empty data path", meta, "", txn.ErrInvalidPath, false},
		{"same path", meta, meta, txn.ErrSameFile, false},
		{"same path spelled differently", meta, filepath.Join(dir, ".", "k.info.json"), txn.ErrSameFile, false},
		{"same new file", data, data, txn.ErrSameFile, false},
		{"data is a symlink to the metadata", meta, link, txn.ErrSameFile, true},
		{"data is a hard link to the metadata", meta, hard, txn.ErrSameFile, false},
		{"metadata is a directory", sub, data, txn.ErrInvalidPath, false},
		{"data is a directory", meta, sub, txn.ErrInvalidPath, false},
		{"data is a dangling symlink", meta, dangling, txn.ErrInvalidPath, true},
		{"metadata is a dangling symlink", dangling, data, txn.ErrInvalidPath, true},
		{"missing metadata directory", filepath.Join(dir, "no", "m"), data, fs.ErrNotExist, false},
		{"missing data directory", meta, filepath.Join(dir, "no", "d"), fs.ErrNotExist, false},
		{"metadata path through a file", filepath.Join(file, "m"), data, syscall.ENOTDIR, false},
		{"data path through a file", meta, filepath.Join(file, "d"), syscall.ENOTDIR, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.symlink && !symlinks {
				t.Skip("this system makes no real symbolic links (Wine, or Windows without the privilege)")
			}
			before := listDir(t, dir)
			tx, err := txn.Begin(c.meta, c.data)
			if err == nil {
				tx.Rollback() // do not leave the lock held for the next case
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, c.want)
			var te *txn.Error
			assert.ErrorAs(t, err, &te)
			_, _, err = txn.Read(context.Background(), c.meta, c.data)
			assert.ErrorIs(t, err, c.want, "Read checks paths too")
			assert.Equal(t, before, listDir(t, dir), "a bad path changes nothing")
			m, err := os.ReadFile(meta)
			require.NoError(t, err)
			assert.Equal(t, "m", string(m))
		})
	}
}

// makeSymlink makes link point to target and reports whether the result is
// a real symbolic link. On Windows creating one needs a privilege, and Wine
// makes something else; on Unix it must work.
func makeSymlink(t *testing.T, target, link string) bool {
	t.Helper()
	err := os.Symlink(target, link)
	if runtime.GOOS != "windows" {
		require.NoError(t, err)
	}
	if err != nil {
		return false
	}
	fi, err := os.Lstat(link)
	if runtime.GOOS != "windows" {
		require.NoError(t, err)
		require.NotZero(t, fi.Mode()&fs.ModeSymlink, "os.Symlink made a symbolic link")
	}
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		// Wine's os.Symlink reports success and makes nothing.
		os.Remove(link)
		return false
	}
	return true
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestCommit_FollowsADataSymlink(t *testing.T) {
	dir, meta, data := pairPaths(t)
	store := filepath.Join(dir, "store")
	require.NoError(t, os.Mkdir(store, 0o755))
	target := filepath.Join(store, "real.json")
	require.NoError(t, os.WriteFile(target, []byte("d1"), 0o644))
	if !makeSymlink(t, target, data) {
		t.Skip("this system makes no real symbolic links (Wine, or Windows without the privilege)")
	}
	commit(t, meta, data, "m2", "d2")
	fi, err := os.Lstat(data)
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&fs.ModeSymlink, "the link stays a link")
	got, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "d2", string(got), "the link's target is replaced")
	assertOnlyPair(t, store, "real.json")
}

// logBuffer collects what a *slog.Logger writes.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}
