package txn_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testDir is t.TempDir, except that its clean-up removes entries one by one:
// under Wine os.RemoveAll fails, and these tests run there too.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "txnpair-txn-test-")
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
