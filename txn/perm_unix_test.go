//go:build unix

package txn_test

import (
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/txn"
)

func TestCommit_Permissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	t.Run("new files get WithPerm less the umask", func(t *testing.T) {
		_, meta, data := pairPaths(t)
		commit(t, meta, data, "m", "d", txn.WithPerm(0o664))
		assertMode(t, meta, 0o644)
		assertMode(t, data, 0o644)
		_, meta, data = pairPaths(t)
		commit(t, meta, data, "m", "d", txn.WithPerm(0o600))
		assertMode(t, meta, 0o600)
		assertMode(t, data, 0o600)
	})
	t.Run("existing files keep their mode", func(t *testing.T) {
		_, meta, data := pairPaths(t)
		commit(t, meta, data, "m", "d")
		require.NoError(t, os.Chmod(meta, 0o640))
		require.NoError(t, os.Chmod(data, 0o604))
		commit(t, meta, data, "m2", "d2", txn.WithPerm(0o600))
		assertMode(t, meta, 0o640)
		assertMode(t, data, 0o604)
	})
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, want, fi.Mode().Perm(), path)
}
