package lock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/lock"
)

// Cross-process tests re-run this test binary as a child: TestMain
// turns it into a small lock server when the environment says so. The parent
// sends one command a line on the child's stdin and reads one reply a line
// from its stdout:
//
//	try x|s       TryAcquire and release at once: "ok", "locked <err>" or "error <err>"
//	hold x|s      Acquire and keep it: "held"
//	release       release the held lock: "released <monotonic ns just before>"
//	holdfor <ns>  Acquire, reply "held", keep it ns nanoseconds, then release
//	              and reply "released <monotonic ns just before>"
//	exit          exit at once, without releasing anything

const (
	helperEnv     = "LOCK_TEST_HELPER"
	helperPathEnv = "LOCK_TEST_HELPER_PATH"

	// replyTimeout bounds every wait for a child's reply, so that a broken
	// child fails the test instead of hanging it. It is not a speed limit.
	replyTimeout = 30 * time.Second
)

// TestMain turns the test binary into the lock server when a cross-process
// test started it as a child.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(serve(os.Getenv(helperPathEnv), os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// scratchDir is t.TempDir, except that its clean-up removes entries one by
// one: under Wine os.RemoveAll fails, and these tests also run there.
func scratchDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "txnpair-lock-")
	require.NoError(t, err)
	t.Cleanup(func() {
		var paths []string
		filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			paths = append(paths, p)
			return nil
		})
		slices.Reverse(paths)
		for _, p := range paths {
			if err := os.Remove(p); err != nil {
				t.Errorf("cleaning up: %v", err)
			}
		}
	})
	return dir
}

func parseMode(s string) lock.Mode {
	if s == "s" {
		return lock.Shared
	}
	return lock.Exclusive
}

func serve(path string, in io.Reader, out io.Writer) int {
	w := bufio.NewWriter(out)
	reply := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
		w.Flush()
	}
	var held *lock.Lock
	release := func() {
		ts := monotonicNow()
		if err := held.Release(); err != nil {
			reply("error %v", err)
			return
		}
		held = nil
		reply("released %d", ts)
	}
	s := bufio.NewScanner(in)
	for s.Scan() {
		cmd, arg, _ := strings.Cut(s.Text(), " ")
		switch cmd {
		case "try":
			l, err := lock.TryAcquire(path, parseMode(arg))
			switch {
			case err == nil:
				l.Release()
				reply("ok")
			case errors.Is(err, lock.ErrLocked):
				reply("locked %v", err)
			default:
				reply("error %v", err)
			}
		case "hold":
			l, err := lock.Acquire(context.Background(), path, parseMode(arg))
			if err != nil {
				reply("error %v", err)
				continue
			}
			held = l
			reply("held")
		case "release":
			release()
		case "holdfor":
			ns, _ := strconv.ParseInt(arg, 10, 64)
			l, err := lock.Acquire(context.Background(), path, lock.Exclusive)
			if err != nil {
				reply("error %v", err)
				continue
			}
			held = l
			reply("held")
			time.Sleep(time.Duration(ns))
			release()
		case "exit":
			return 0
		default:
			reply("error unknown command %q", cmd)
		}
	}
	return 0
}

// lockServer is a running helper process serving one path.
type lockServer struct {
	t       testing.TB
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies chan string
}

// startServer starts a helper process that locks path.
func startServer(t testing.TB, path string) *lockServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &lockServer{t: t, cmd: cmd, stdin: stdin, replies: make(chan string, 16)}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			c.replies <- s.Text()
		}
		close(c.replies)
	}()
	t.Cleanup(func() {
		stdin.Close()
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

func (c *lockServer) pid() int { return c.cmd.Process.Pid }

// send writes a command without waiting for its reply.
func (c *lockServer) send(cmd string) {
	c.t.Helper()
	_, err := io.WriteString(c.stdin, cmd+"\n")
	require.NoError(c.t, err, "sending %q to the child", cmd)
}

// reply waits for the child's next reply.
func (c *lockServer) reply() string {
	c.t.Helper()
	select {
	case r, ok := <-c.replies:
		require.True(c.t, ok, "the child exited without replying")
		return r
	case <-time.After(replyTimeout):
		require.FailNow(c.t, "the child did not reply", "within %v", replyTimeout)
		return ""
	}
}

// do sends cmd and returns the reply.
func (c *lockServer) do(cmd string) string {
	c.t.Helper()
	c.send(cmd)
	return c.reply()
}

// kill ends the child with SIGKILL (TerminateProcess on Windows) and waits
// for it to be gone.
func (c *lockServer) kill() {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Kill())
	c.cmd.Wait()
}

// exit asks the child to exit without releasing its locks and waits for it.
func (c *lockServer) exit() {
	c.t.Helper()
	c.send("exit")
	require.NoError(c.t, c.cmd.Wait())
}

func itoa(i int) string { return strconv.Itoa(i) }
