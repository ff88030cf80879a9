package lock_test

// Helpers for the Windows tests: a temporary directory that Wine can clean
// up, Wine detection, raw LockFileEx probes from a second handle, and child
// processes that re-run this test binary.

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/windows"
)

// winTempDir is t.TempDir for Windows tests that may run under Wine: Wine
// 8.0 does not implement FileDispositionInformationEx, so os.RemoveAll (and
// with it t.TempDir's clean-up) fails there. The clean-up removes the tree
// entry by entry with os.Remove, children first.
func winTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "txnpair-lock-test-")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, removeTree(dir)) })
	return dir
}

// removeTree removes dir and everything below it with os.Remove.
func removeTree(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	slices.Reverse(paths) // children after their parent in walk order
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

var (
	wineOnce sync.Once
	wine     bool
)

// underWine reports whether the test runs under Wine, whose ntdll exports
// wine_get_version.
func underWine() bool {
	wineOnce.Do(func() {
		wine = windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
	})
	return wine
}

// wineNoCancel names the Wine difference that tests of cancelled waits
// skip for.
const wineNoCancel = "Wine cannot cancel a waiting LockFileEx (CancelSynchronousIo finds nothing to cancel), " +
	"so a cancelled Acquire's wait lingers until the holder releases, then takes and drops the lock, which a probe can catch"

// skipUnderWine skips a test of behaviour that real Windows has and Wine
// does not model; why names the difference.
func skipUnderWine(t testing.TB, why string) {
	t.Helper()
	if underWine() {
		t.Skip("Wine differs from Windows: " + why)
	}
}

// rawOpen opens path as a second, independent handle, as another program
// would: read-write, sharing read, write and delete.
func rawOpen(t testing.TB, path string) windows.Handle {
	t.Helper()
	p, err := windows.UTF16PtrFromString(path)
	require.NoError(t, err)
	h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	require.NoError(t, err)
	t.Cleanup(func() { windows.CloseHandle(h) })
	return h
}

// rawTryLock tries LockFileEx on one byte of h without waiting and returns
// the system's error; nil means the lock was granted (and is still held).
func rawTryLock(h windows.Handle, off int64, exclusive bool) error {
	flags := uint32(windows.LOCKFILE_FAIL_IMMEDIATELY)
	if exclusive {
		flags |= windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	ov := windows.Overlapped{Offset: uint32(off), OffsetHigh: uint32(off >> 32)}
	return windows.LockFileEx(h, flags, 0, 1, 0, &ov)
}

func rawUnlock(h windows.Handle, off int64) error {
	ov := windows.Overlapped{Offset: uint32(off), OffsetHigh: uint32(off >> 32)}
	return windows.UnlockFileEx(h, 0, 1, 0, &ov)
}

// childEnv turns a copy of the test binary into a child process; its value
// names the role the child plays.
const childEnv = "TXNPAIR_LOCK_WINDOWS_CHILD"

// pathEnv passes the locked file's path to a child.
const pathEnv = "TXNPAIR_LOCK_WINDOWS_PATH"

// child is a copy of this test binary, running one test in a role, talking
// line by line over its stdin and stdout.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startChild re-runs this test binary's test named test in role, with the
// file at path.
func startChild(t *testing.T, test, role, path string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+role, pathEnv+"="+path)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		c.in.Close()
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// expect reads the child's next line and checks that it starts with want;
// it returns the rest of the line.
func (c *child) expect(t *testing.T, want string) string {
	t.Helper()
	for c.out.Scan() {
		line := strings.TrimRight(c.out.Text(), "\r")
		if rest, ok := strings.CutPrefix(line, want); ok {
			return strings.TrimSpace(rest)
		}
		require.Failf(t, "unexpected line from child", "want %q, got %q", want, line)
	}
	require.Failf(t, "child ended", "want %q; scan error: %v", want, c.out.Err())
	return ""
}

// send writes one line to the child.
func (c *child) send(t *testing.T, line string) {
	t.Helper()
	_, err := io.WriteString(c.in, line+"\n")
	require.NoError(t, err)
}

// wait waits for the child to exit and checks that it succeeded.
func (c *child) wait(t *testing.T) {
	t.Helper()
	c.in.Close()
	require.NoError(t, c.cmd.Wait())
}

// kill ends the child abruptly, as a crash would.
func (c *child) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, c.cmd.Process.Kill())
	c.cmd.Wait()
}

// parentLink is the child's side of the conversation: lines from stdin,
// replies on stdout.
type parentLink struct{ in *bufio.Scanner }

func newParentLink() *parentLink { return &parentLink{in: bufio.NewScanner(os.Stdin)} }

func (parentLink) say(line string) { os.Stdout.WriteString(line + "\n") }

// next returns the parent's next line, or "" when the parent closed stdin.
func (p *parentLink) next() string {
	if !p.in.Scan() {
		return ""
	}
	return strings.TrimRight(p.in.Text(), "\r")
}

// childFail reports a failure in a child and exits non-zero, which the
// parent sees in wait.
func childFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "child: "+format+"\n", args...)
	os.Exit(2)
}
