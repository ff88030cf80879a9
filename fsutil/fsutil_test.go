package fsutil_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/fsutil"
)

func TestIsTempName(t *testing.T) {
	for _, c := range []struct {
		name string
		want bool
	}{
		{".k.json123", true},
		{".k.json8674665223082153551", true},
		{".k.json", false},
		{"k.json123", false},
		{".k.json12a", false},
		{".k.json.tmp", false},
		{".k.jso123", false},
		{".k.json-1", false},
	} {
		assert.Equal(t, c.want, fsutil.IsTempName(c.name, "k.json"), c.name)
	}
}

func TestTempNames_SkipsNamesASiblingCouldOwn(t *testing.T) {
	dir := testDir(t)
	for _, n := range []string{"k.json", ".k.json42", ".k.json123", "k.json1", "other", ".other7"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
	got, err := fsutil.TempNames(filepath.Join(dir, "k.json"))
	require.NoError(t, err)
	// ".k.json123" could be sibling "k.json1"'s staged file ".k.json1"+"23".
	assert.Equal(t, []string{filepath.Join(dir, ".k.json42")}, got)
}

func TestRemoveFiles_CountsVanishedFilesAsRemoved(t *testing.T) {
	dir := testDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	require.NoError(t, os.WriteFile(a, nil, 0o644))
	removed, err := fsutil.RemoveFiles([]string{a, b})
	require.NoError(t, err)
	assert.Equal(t, []string{a, b}, removed)
	_, err = os.Stat(a)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestRecordPath_IsAHiddenSibling(t *testing.T) {
	got := fsutil.RecordPath(filepath.Join("cache", "497deca9.info.json"))
	assert.Equal(t, filepath.Join("cache", ".497deca9.info.json"+fsutil.RecordSuffix), got)
}

func TestSameFile_TracksReplacement(t *testing.T) {
	dir := testDir(t)
	p := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(p, []byte("1"), 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	same, err := fsutil.SameFile(f, p)
	require.NoError(t, err)
	assert.True(t, same)

	link := filepath.Join(dir, "hard")
	require.NoError(t, os.Link(p, link))
	same, err = fsutil.SameFile(f, link)
	require.NoError(t, err)
	assert.True(t, same, "a hard link is the same file")

	if runtime.GOOS == "windows" {
		t.Skip("Windows refuses to replace or remove a file that is open without FILE_SHARE_DELETE, as Go opens files; TestSameFileTracksReplacementOfASharedOpen covers it")
	}
	require.NoError(t, os.WriteFile(p+".new", []byte("2"), 0o644))
	require.NoError(t, os.Rename(p+".new", p))
	same, err = fsutil.SameFile(f, p)
	require.NoError(t, err)
	assert.False(t, same, "a file renamed over the path is another file")

	require.NoError(t, os.Remove(p))
	same, err = fsutil.SameFile(f, p)
	require.NoError(t, err)
	assert.False(t, same, "a removed path names no file")
}

func TestFileIDs_AgreeAcrossCalls(t *testing.T) {
	dir := testDir(t)
	p := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(p, nil, 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	a, err := fsutil.FileIDOf(f)
	require.NoError(t, err)
	b, err := fsutil.PathID(p)
	require.NoError(t, err)
	c, err := fsutil.InfoID(f, fi)
	require.NoError(t, err)
	assert.Equal(t, a, b)
	assert.Equal(t, a, c)
	assert.NotZero(t, a.Ino)
	q := filepath.Join(dir, "g")
	require.NoError(t, os.WriteFile(q, nil, 0o644))
	d, err := fsutil.PathID(q)
	require.NoError(t, err)
	assert.NotEqual(t, a, d)
}

func TestSyncDir(t *testing.T) {
	dir := testDir(t)
	assert.NoError(t, fsutil.SyncDir(dir))
	assert.Error(t, fsutil.SyncDir(filepath.Join(dir, "missing")))
}

func TestFSType_NamesKnownFilesystems(t *testing.T) {
	got, err := fsutil.FSType(testDir(t))
	require.NoError(t, err)
	assert.NotEmpty(t, got)
	if runtime.GOOS == "linux" {
		got, err = fsutil.FSType("/proc")
		require.NoError(t, err)
		assert.Equal(t, "proc", got)
	}
	_, err = fsutil.FSType(filepath.Join(testDir(t), "missing"))
	assert.Error(t, err)
}

func TestIsNetworkFS(t *testing.T) {
	for _, n := range []string{"nfs", "cifs", "lustre", "fuse"} {
		assert.True(t, fsutil.IsNetworkFS(n), n)
	}
	for _, n := range []string{"ext4", "xfs", "tmpfs", "ntfs", "unknown"} {
		assert.False(t, fsutil.IsNetworkFS(n), n)
	}
}
