package fsutil_test

// Windows tests of file identity, directory syncs and the clean-up of
// leftovers. They run under Wine in CI (.ci/wine-test).

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/windows"

	"github.com/txnpair/txnpair/fsutil"
)

// testDir is t.TempDir for tests that may run under Wine: Wine 8.0 does not
// implement FileDispositionInformationEx, so os.RemoveAll (and with it
// t.TempDir's clean-up) fails there. The clean-up removes the tree entry by
// entry with os.Remove, children first.
func testDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "txnpair-fsutil-test-")
	require.NoError(t, err)
	t.Cleanup(func() {
		var paths []string
		err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			paths = append(paths, p)
			return err
		})
		assert.NoError(t, err)
		slices.Reverse(paths)
		for _, p := range paths {
			assert.NoError(t, os.Remove(p))
		}
	})
	return dir
}

// openShared opens path for reading the way programs that let others rename
// and delete an open file do: sharing read, write and delete.
func openShared(t *testing.T, path string) *os.File {
	t.Helper()
	p, err := windows.UTF16PtrFromString(path)
	require.NoError(t, err)
	h, err := windows.CreateFile(p, windows.GENERIC_READ,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	require.NoError(t, err)
	f := os.NewFile(uintptr(h), path)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestSameFileTracksReplacementOfASharedOpen(t *testing.T) {
	dir := testDir(t)
	p := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(p, []byte("1"), 0o644))
	f := openShared(t, p)
	same, err := fsutil.SameFile(f, p)
	require.NoError(t, err)
	assert.True(t, same)

	// Windows refuses to rename over an open file (ERROR_ACCESS_DENIED,
	// unless POSIX rename semantics are asked for), but an open that
	// shares delete access lets the file itself be renamed away.
	require.NoError(t, os.Rename(p, p+".old"), "MoveFileEx of a file opened with FILE_SHARE_DELETE")
	require.NoError(t, os.WriteFile(p, []byte("2"), 0o644))
	same, err = fsutil.SameFile(f, p)
	require.NoError(t, err)
	assert.False(t, same, "a new file at the path is another file")

	require.NoError(t, os.Remove(p))
	same, err = fsutil.SameFile(f, p)
	require.NoError(t, err)
	assert.False(t, same, "a removed path names no file")

	skipUnderWine(t, "after an open file is renamed, Wine 8.0 reports volume serial number 0 for its handle")
	same, err = fsutil.SameFile(f, p+".old")
	require.NoError(t, err)
	assert.True(t, same, "the file under its new name")
}

// underWine reports whether the test runs under Wine, whose ntdll exports
// wine_get_version.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

// skipUnderWine skips the rest of a test of behaviour that real Windows has
// and Wine does not model; why names the difference.
func skipUnderWine(t testing.TB, why string) {
	t.Helper()
	if underWine() {
		t.Skip("Wine differs from Windows: " + why)
	}
}

func TestRenameOverFileOpenByGoIsRefused(t *testing.T) {
	// Go's os.Open does not share delete access, so while any Go program
	// has the data file open, it cannot be replaced; txn's commit meets
	// this when a reader holds the data file open.
	dir := testDir(t)
	p := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(p, []byte("1"), 0o644))
	require.NoError(t, os.WriteFile(p+".new", []byte("2"), 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	err = os.Rename(p+".new", p)
	assert.ErrorIs(t, err, windows.ERROR_ACCESS_DENIED, "replacing the open destination")
	require.NoError(t, f.Close())

	g, err := os.Open(p + ".new")
	require.NoError(t, err)
	err = os.Rename(p+".new", p)
	assert.ErrorIs(t, err, windows.ERROR_SHARING_VIOLATION, "renaming an open source")
	require.NoError(t, g.Close())
	require.NoError(t, os.Rename(p+".new", p), "with both closed")
}

func TestFileIDDistinguishesFilesAndFollowsHardLinks(t *testing.T) {
	dir := testDir(t)
	p, q := filepath.Join(dir, "p"), filepath.Join(dir, "q")
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	require.NoError(t, os.WriteFile(q, nil, 0o644))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Link(p, link))

	a, err := fsutil.PathID(p)
	require.NoError(t, err)
	b, err := fsutil.PathID(link)
	require.NoError(t, err)
	c, err := fsutil.PathID(q)
	require.NoError(t, err)
	assert.Equal(t, a, b, "a hard link has the file's volume and index")
	assert.NotEqual(t, a, c)
	assert.NotZero(t, a.Ino)

	d, err := fsutil.PathID(dir)
	require.NoError(t, err, "directories have identities too")
	assert.NotEqual(t, a, d)

	_, err = fsutil.PathID(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestPathIDWorksWhileTheFileIsLocked(t *testing.T) {
	// PathID opens with no access rights, which neither byte-range locks
	// nor sharing modes refuse.
	dir := testDir(t)
	p := filepath.Join(dir, "meta")
	require.NoError(t, os.WriteFile(p, make([]byte, 32), 0o644))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	ov := windows.Overlapped{Offset: 21}
	require.NoError(t, windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ov))
	same, err := fsutil.SameFile(f, p)
	require.NoError(t, err)
	assert.True(t, same)
}

func TestSyncDirChecksTheDirectory(t *testing.T) {
	dir := testDir(t)
	assert.NoError(t, fsutil.SyncDir(dir))
	assert.ErrorIs(t, fsutil.SyncDir(filepath.Join(dir, "missing")), fs.ErrNotExist)
	f := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(f, nil, 0o644))
	assert.Error(t, fsutil.SyncDir(f), "a file is not a directory")
}

func TestFSTypeNamesTheVolume(t *testing.T) {
	got, err := fsutil.FSType(testDir(t))
	require.NoError(t, err)
	assert.NotEmpty(t, got)
	assert.False(t, fsutil.IsNetworkFS(got), "the temporary directory is local: %s", got)
	t.Logf("temporary directory's filesystem: %s", got)
}

func TestRemoveFilesReportsAFileHeldOpen(t *testing.T) {
	// Windows cannot remove a file that another handle holds open without
	// FILE_SHARE_DELETE (as Go opens files); the others are still removed.
	// RemoveFiles uses os.Remove, which works under Wine, unlike
	// os.RemoveAll.
	dir := testDir(t)
	a, b := filepath.Join(dir, ".k.json1"), filepath.Join(dir, ".k.json2")
	require.NoError(t, os.WriteFile(a, nil, 0o644))
	require.NoError(t, os.WriteFile(b, nil, 0o644))
	names, err := fsutil.TempNames(filepath.Join(dir, "k.json"))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{a, b}, names)

	f, err := os.Open(a)
	require.NoError(t, err)
	removed, err := fsutil.RemoveFiles(names)
	assert.ErrorIs(t, err, windows.ERROR_SHARING_VIOLATION)
	assert.Equal(t, []string{b}, removed)
	require.NoError(t, f.Close())

	removed, err = fsutil.RemoveFiles([]string{a})
	require.NoError(t, err)
	assert.Equal(t, []string{a}, removed)
}
