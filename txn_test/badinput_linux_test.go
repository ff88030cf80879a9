package txn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/txnpair/txnpair/txn"
	"golang.org/x/sys/unix"
)

// Sizes for the full-disk cases: the pair fits in the filesystem, the new
// content does not.
const (
	smallFSSize = 1 << 20
	overflow    = 2 * smallFSSize
)

// nobody is the unprivileged user the permission cases run as when the
// suite runs as root, which bypasses file permissions.
const nobody = 65534

// Environment of a badinput child.
const envBadCase = "TXNPAIR_TEST_BAD_CASE"

func platformBadCases() []badCase {
	return []badCase{
		{name: "full disk while streaming data", is: []error{syscall.ENOSPC},
			setup: onTmpfs,
			op: func(t *testing.T, e *badEnv) error {
				tx := mustBegin(t, e)
				defer tx.Rollback()
				tx.Meta().Write(newPair.meta)
				if _, err := io.Copy(tx.Data(), io.LimitReader(zeros{}, overflow)); err != nil {
					return err
				}
				return tx.Commit()
			}},
		{name: "full disk writing the commit record", is: []error{syscall.ENOSPC},
			setup: onTmpfs,
			op: func(t *testing.T, e *badEnv) error {
				tx := mustBegin(t, e)
				defer tx.Rollback()
				big := make([]byte, overflow)
				tx.Meta().Write(big)
				tx.Data().Write(newPair.data[:100])
				return tx.Commit()
			}},
		{name: "read-only filesystem", is: []error{syscall.EROFS},
			setup: func(t *testing.T, e *badEnv) {
				onTmpfs(t, e)
				require.NoError(t, unix.Mount("", e.dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""))
			},
			op: func(t *testing.T, e *badEnv) error {
				return txn.Update(context.Background(), e.meta, e.data, func(tx *txn.Tx) error {
					_, err := tx.Data().Write(newPair.data)
					return err
				})
			}},
		{name: "permission denied: directory not writable", is: []error{fs.ErrPermission},
			setup: func(t *testing.T, e *badEnv) { forNobody(t, e, 0o555, 0o644) },
			op:    func(t *testing.T, e *badEnv) error { return asNobody(t, e, "dir") }},
		{name: "permission denied: metadata file not writable", is: []error{fs.ErrPermission},
			setup: func(t *testing.T, e *badEnv) { forNobody(t, e, 0o755, 0o444) },
			op:    func(t *testing.T, e *badEnv) error { return asNobody(t, e, "meta") }},
		{name: "data path is a FIFO", is: []error{txn.ErrInvalidPath},
			setup: func(t *testing.T, e *badEnv) { require.NoError(t, unix.Mkfifo(filepath.Join(e.dir, "fifo"), 0o644)) },
			op: func(t *testing.T, e *badEnv) error {
				tx, err := txn.Begin(e.meta, filepath.Join(e.dir, "fifo"))
				if err == nil {
					tx.Rollback()
				}
				return err
			}},
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// onTmpfs moves the case's pair onto a fresh tmpfs of smallFSSize.
func onTmpfs(t *testing.T, e *badEnv) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := filepath.Join(e.dir, "mnt")
	require.NoError(t, os.Mkdir(mnt, 0o755))
	require.NoError(t, unix.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d", smallFSSize)))
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	e.dir = mnt
	e.meta, e.data = pairIn(mnt)
	writePair(t, e.meta, e.data, oldPair)
}

// forNobody gives the pair to nobody, with dir's and the metadata file's
// modes set, when the suite runs as root; otherwise it only sets the modes.
func forNobody(t *testing.T, e *badEnv, dirMode, metaMode fs.FileMode) {
	if os.Geteuid() == 0 {
		// Let nobody reach the directory.
		for d := filepath.Dir(e.dir); d != "/" && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
			require.NoError(t, os.Chmod(d, 0o755))
		}
		require.NoError(t, os.Chown(e.meta, nobody, nobody))
		require.NoError(t, os.Chown(e.data, nobody, nobody))
	}
	require.NoError(t, os.Chmod(e.meta, metaMode))
	require.NoError(t, os.Chmod(e.dir, dirMode))
	t.Cleanup(func() { os.Chmod(e.dir, 0o755) })
}

// asNobody runs badCaseOp as nobody in a child when the suite runs as root,
// else in this process. A child reports the error's kind, which comes back
// here as an error of the same kind.
func asNobody(t *testing.T, e *badEnv, which string) error {
	if os.Geteuid() != 0 {
		return badCaseOp(which, e.meta, e.data)
	}
	// nobody must be able to run the test binary.
	bin := filepath.Join(filepath.Dir(e.dir), "txn_test.bin")
	copyFile(t, os.Args[0], bin, 0o755)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(childEnviron(), envRole+"=badinput", envBadCase+"="+which, envMeta+"="+e.meta, envData+"="+e.data)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("cannot run a child as nobody: %v\n%s", err, out)
	}
	res := strings.TrimSpace(string(out))
	switch {
	case strings.HasPrefix(res, "nil"):
		return nil
	case strings.HasPrefix(res, "permission txn "):
		return &txn.Error{Op: "child", Err: fmt.Errorf("%w: %s", fs.ErrPermission, res)}
	}
	return errors.New(res)
}

func copyFile(t *testing.T, from, to string, mode fs.FileMode) {
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, mode))
	require.NoError(t, os.Chmod(to, mode))
}

// badCaseOp commits newPair over the pair, which is not writable.
func badCaseOp(which, meta, data string) error {
	return txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		tx.Meta().Write(newPair.meta)
		_, err := tx.Data().Write(newPair.data)
		return err
	})
}

// childBadInput runs badCaseOp and reports its error's kind: "nil",
// "permission txn <error>" for a *txn.Error wrapping fs.ErrPermission, or
// "other <error>".
func childBadInput() error {
	err := badCaseOp(os.Getenv(envBadCase), os.Getenv(envMeta), os.Getenv(envData))
	var te *txn.Error
	switch {
	case err == nil:
		report("nil")
	case errors.Is(err, fs.ErrPermission) && errors.As(err, &te):
		report("permission txn %v", err)
	default:
		report("other %T %v", err, err)
	}
	return nil
}
