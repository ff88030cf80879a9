//go:build unix

package lock_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/lock"
)

// conda is a python3 process taking conda's lock through testdata/conda_lock.py.
type conda struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func python(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: the interop tests with conda's fcntl.lockf call need it")
	}
	return py
}

func startConda(t *testing.T, action, path string) *conda {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "conda_lock.py"))
	require.NoError(t, err)
	cmd := exec.Command(python(t), script, action, path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return &conda{t: t, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
}

func (c *conda) line() string {
	c.t.Helper()
	require.True(c.t, c.out.Scan(), "python3 exited without a reply: %v", c.out.Err())
	return c.out.Text()
}

// condaTry runs conda's non-blocking lock call once on path and returns
// what Python printed, after Python has exited (and so dropped the lock).
func condaTry(t *testing.T, path string) string {
	t.Helper()
	c := startConda(t, "try", path)
	out := c.line()
	require.NoError(t, c.cmd.Wait())
	return out
}

func TestCondaLockExcludesLock(t *testing.T) {
	path := tempPath(t)
	py := startConda(t, "hold", path)
	require.Equal(t, "locked", py.line())

	for _, mode := range []lock.Mode{lock.Exclusive, lock.Shared} {
		_, err := lock.TryAcquire(path, mode)
		require.ErrorIs(t, err, lock.ErrLocked, "mode %v", mode)
		assert.Contains(t, err.Error(), "pid "+itoa(py.cmd.Process.Pid), "TryAcquire's error does not name conda's pid")
	}
	h, err := lock.Holder(path)
	require.NoError(t, err)
	assert.True(t, h.Held)
	assert.Equal(t, lock.Exclusive, h.Mode)
	assert.Equal(t, py.cmd.Process.Pid, h.PID)
	if h.Process != "" { // only Linux names the process
		assert.Contains(t, h.Process, "python")
	}

	_, err = io.WriteString(py.stdin, "unlock\n")
	require.NoError(t, err)
	require.Equal(t, "unlocked", py.line())
	l, err := lock.TryAcquire(path, lock.Exclusive)
	require.NoError(t, err, "conda's lock was dropped but TryAcquire still fails")
	assert.NoError(t, l.Release())
}

func TestLockExcludesCondaLock(t *testing.T) {
	path := tempPath(t)
	for _, mode := range []lock.Mode{lock.Exclusive, lock.Shared} {
		l, err := lock.TryAcquire(path, mode)
		require.NoError(t, err)
		got := condaTry(t, path)
		assert.True(t, strings.HasPrefix(got, "busy "), "conda's lockf succeeded while we held %v: %q", mode, got)
		t.Logf("conda's call while we hold %v: %s", mode, got)
		require.NoError(t, l.Release())
		assert.Equal(t, "acquired", condaTry(t, path), "conda cannot lock after we released")
	}
}

func TestAcquireWaitsForCondaLock(t *testing.T) {
	path := tempPath(t)
	py := startConda(t, "hold", path)
	require.Equal(t, "locked", py.line())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woke := acquireBehind(t, ctx, path)
	_, err := io.WriteString(py.stdin, "unlock\n")
	require.NoError(t, err)
	require.Equal(t, "unlocked", py.line())
	woke()
}

func TestUnsupportedErrorNamesFilesystemAndRemedy(t *testing.T) {
	path := tempPath(t)
	require.NoError(t, os.WriteFile(path, nil, 0o666))
	fstype, err := fsutil.FSType(path)
	require.NoError(t, err)
	for _, errno := range []syscall.Errno{unix.ENOLCK, unix.ENOSYS, unix.EOPNOTSUPP} {
		t.Run(errno.Error(), func(t *testing.T) {
			err := lock.FailWith(path, errno)
			assert.ErrorIs(t, err, lock.ErrUnsupported)
			assert.ErrorIs(t, err, errors.ErrUnsupported)
			assert.ErrorIs(t, err, errno)
			var le *lock.Error
			require.ErrorAs(t, err, &le)
			assert.Equal(t, fstype, le.FSType)
			assert.Equal(t, lock.Remedy(fstype), le.Hint)
			msg := err.Error()
			assert.Contains(t, msg, path)
			assert.Contains(t, msg, "byte 21")
			assert.Contains(t, msg, "on "+fstype)
			assert.Contains(t, msg, le.Hint)
			assert.Contains(t, msg, errno.Error())
		})
	}
	t.Run("would_block_is_not_unsupported", func(t *testing.T) {
		err := lock.FailWith(path, unix.EIO)
		assert.NotErrorIs(t, err, lock.ErrUnsupported)
		assert.ErrorIs(t, err, unix.EIO)
	})
}

func TestRemedyNamesTheFix(t *testing.T) {
	for fstype, want := range map[string]string{
		"nfs":    "lockd",
		"lustre": "-o flock",
		"cifs":   "nobrl",
		"smb2":   "nobrl",
		"fuse":   "FUSE",
		"ext4":   "local filesystem",
	} {
		assert.Contains(t, lock.Remedy(fstype), want, fstype)
	}
}

func TestAcquireRefusesFIFO(t *testing.T) {
	path := filepath.Join(scratchDir(t), "fifo")
	require.NoError(t, unix.Mkfifo(path, 0o666))
	// A read-only open of a FIFO would wait for a writer forever.
	for _, m := range []lock.Mode{lock.Exclusive, lock.Shared} {
		_, err := lock.TryAcquire(path, m)
		assert.ErrorIs(t, err, lock.ErrNotRegular, m.String())
	}
}
