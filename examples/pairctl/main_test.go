package main

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/examples/internal/progtest"
	"github.com/txnpair/txnpair/txn"
)

// pairctlBin is the pairctl program, built once by TestMain.
var pairctlBin string

// crashEnv turns the test binary into a child that starts a commit and
// exits at the step the variable names, leaving the commit for recovery.
const crashEnv = "PAIRCTL_TEST_CRASH_AT"

func TestMain(m *testing.M) {
	if step := os.Getenv(crashEnv); step != "" {
		crashChild(txn.Step(step), os.Args[len(os.Args)-2], os.Args[len(os.Args)-1])
		return
	}
	progtest.Main(m, "pairctl", &pairctlBin)
}

// crashChild commits a new pair and exits the process at step, as a crash
// would.
func crashChild(step txn.Step, meta, data string) {
	hook := txn.WithStepHook(func(s txn.Step) error {
		if s == step {
			os.Exit(0)
		}
		return nil
	})
	tx, err := txn.Begin(meta, data, hook)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tx.Meta().Write([]byte(`{"crashed": "new"}`))
	tx.Data().Write([]byte(`{"new": true}`))
	err = tx.Commit()
	fmt.Fprintf(os.Stderr, "the commit did not stop at %s: %v\n", step, err)
	os.Exit(1)
}

// pairctl runs the built program and returns its exit status and output.
func pairctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return progtest.Run(t, "", pairctlBin, args...)
}

// newPair writes a pair whose metadata records the data file's mtime and
// size, through pairctl write -stamp.
func newPair(t *testing.T) (meta, data string) {
	t.Helper()
	dir := t.TempDir()
	meta, data = filepath.Join(dir, "abcd1234.info.json"), filepath.Join(dir, "abcd1234.json")
	mf, df := filepath.Join(dir, "in.meta"), filepath.Join(dir, "in.data")
	require.NoError(t, os.WriteFile(mf, []byte(`{"url": "https://example.invalid/linux-64/repodata.json", "etag": "\"1\""}`), 0o644))
	require.NoError(t, os.WriteFile(df, []byte(`{"packages": {}}`), 0o644))
	code, out, errOut := pairctl(t, "write", meta, data, "-meta-file", mf, "-data-file", df, "-stamp", "-no-sync")
	require.Equal(t, exitOK, code, "%s %s", out, errOut)
	return meta, data
}

// pythonHolder starts python3 holding conda's lock on byte 21 of path, in
// mode "EX" or "SH", until the returned function is called.
func pythonHolder(t *testing.T, path, mode string) (pid int, stop func()) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: cannot start a conda-protocol lock holder")
	}
	if runtime.GOOS == "windows" {
		t.Skip("conda's lock on Windows is msvcrt.locking, not fcntl")
	}
	const script = `
import fcntl, sys
f = open(sys.argv[1], "r+" if sys.argv[2] == "EX" else "r")
fcntl.lockf(f, fcntl.LOCK_EX if sys.argv[2] == "EX" else fcntl.LOCK_SH, 1, 21)
print("locked", flush=True)
sys.stdin.read()
`
	cmd := exec.Command(py, "-c", script, path, mode)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	stop = func() {
		stdin.Close()
		cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		require.NoError(t, err, "python3 did not take the lock")
	}
	require.Equal(t, "locked\n", line)
	return cmd.Process.Pid, stop
}

func TestHolderNamesPythonHoldingCondasLock(t *testing.T) {
	meta, _ := newPair(t)
	pid, stop := pythonHolder(t, meta, "EX")
	defer stop()
	code, out, errOut := pairctl(t, "holder", meta)
	assert.Equal(t, exitLocked, code, "%s %s", out, errOut)
	assert.Contains(t, out, "pid "+strconv.Itoa(pid))
	assert.Contains(t, out, "exclusive")
	if runtime.GOOS == "linux" {
		assert.Contains(t, out, "python", "the process name is given where the system tells")
	}
}

func TestHolderReportsSharedHolder(t *testing.T) {
	meta, _ := newPair(t)
	pid, stop := pythonHolder(t, meta, "SH")
	defer stop()
	code, out, _ := pairctl(t, "holder", meta)
	assert.Equal(t, exitLocked, code)
	assert.Contains(t, out, "pid "+strconv.Itoa(pid))
	assert.Contains(t, out, "shared")
}

func TestHolderReportsFreeByte(t *testing.T) {
	meta, _ := newPair(t)
	code, out, errOut := pairctl(t, "holder", meta)
	assert.Equal(t, exitOK, code, "%s %s", out, errOut)
	assert.Contains(t, out, "not locked")
}

func TestShowTimesOutNamingTheHolder(t *testing.T) {
	meta, data := newPair(t)
	pid, stop := pythonHolder(t, meta, "EX")
	defer stop()
	code, out, errOut := pairctl(t, "show", "-timeout", "200ms", meta, data)
	assert.Equal(t, exitLocked, code, "%s %s", out, errOut)
	assert.Empty(t, out)
	assert.Contains(t, errOut, strconv.Itoa(pid), "the error names the holder")
}

func TestShowPrintsOneCommit(t *testing.T) {
	meta, data := newPair(t)
	code, out, errOut := pairctl(t, "show", meta, data)
	require.Equal(t, exitOK, code, "%s %s", out, errOut)
	m, err := os.ReadFile(meta)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, string(m)), "the metadata comes first:\n%s", out)
	sum := sha256.Sum256([]byte(`{"packages": {}}`))
	assert.Contains(t, out, fmt.Sprintf("16 bytes"))
	assert.Contains(t, out, fmt.Sprintf("sha256 %x", sum))

	code, out, _ = pairctl(t, "show", "-data", meta, data)
	require.Equal(t, exitOK, code)
	assert.True(t, strings.HasSuffix(out, `{"packages": {}}`), "-data prints the data:\n%s", out)
}

func TestVerifyAcceptsStampedPair(t *testing.T) {
	meta, data := newPair(t)
	code, out, errOut := pairctl(t, "verify", meta, data)
	assert.Equal(t, exitOK, code, "%s %s", out, errOut)
	assert.Contains(t, out, "ok:")
	if py, err := exec.LookPath("python3"); err == nil {
		// The same pair passes conda's check as conda's language runs it.
		const check = `
import json, os, sys
s = json.load(open(sys.argv[1])); st = os.stat(sys.argv[2]); json.load(open(sys.argv[2]))
sys.exit(0 if (s["mtime_ns"], s["size"]) == (st.st_mtime_ns, st.st_size) else 1)
`
		out, err := exec.Command(py, "-c", check, meta, data).CombinedOutput()
		assert.NoError(t, err, "%s", out)
	}
}

func TestVerifyReportsMismatch(t *testing.T) {
	cases := map[string]struct {
		change func(t *testing.T, meta, data string)
		want   string
	}{
		"data rewritten": {func(t *testing.T, meta, data string) {
			require.NoError(t, os.WriteFile(data, []byte(`{"packages": {"a": 1}}`), 0o644))
		}, "size 16 in the metadata, 22 on the data file"},
		"data not JSON": {func(t *testing.T, meta, data string) {
			// Same size, so only the JSON check can catch it.
			require.NoError(t, os.WriteFile(data, []byte(`{"packages": {}`+"\x00"), 0o644))
		}, "data: not valid JSON"},
		"metadata empty": {func(t *testing.T, meta, data string) {
			require.NoError(t, os.Truncate(meta, 0))
		}, "conda treats it as no state"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			meta, data := newPair(t)
			tc.change(t, meta, data)
			code, out, errOut := pairctl(t, "verify", meta, data)
			assert.Equal(t, exitMismatch, code, "%s %s", out, errOut)
			assert.Contains(t, out, tc.want)
			assert.Contains(t, errOut, "fail conda's check")
		})
	}
}

func TestRecoverRollsForwardACrashedCommit(t *testing.T) {
	meta, data := newPair(t)
	oldMeta, err := os.ReadFile(meta)
	require.NoError(t, err)
	child := exec.Command(os.Args[0], "-test.run=^$", meta, data)
	child.Env = append(os.Environ(), crashEnv+"="+string(txn.StepWriteMeta))
	out, err := child.CombinedOutput()
	require.NoError(t, err, "%s", out)
	m, err := os.ReadFile(meta)
	require.NoError(t, err)
	require.Equal(t, oldMeta, m, "the crash came before the metadata was written")

	code, stdout, errOut := pairctl(t, "recover", "-no-sync", meta, data)
	assert.Equal(t, exitOK, code, "%s %s", stdout, errOut)
	assert.Contains(t, stdout, "rolled forward")
	code, stdout, _ = pairctl(t, "show", "-data", meta, data)
	assert.Equal(t, exitOK, code)
	assert.Equal(t, "{\"crashed\": \"new\"}\n{\"new\": true}", stdout)

	code, stdout, _ = pairctl(t, "recover", meta, data)
	assert.Equal(t, exitOK, code)
	assert.Equal(t, "nothing to recover\n", stdout)
}

func TestRecoverRemovesStagedFilesOfAnUnfinishedCommit(t *testing.T) {
	meta, data := newPair(t)
	child := exec.Command(os.Args[0], "-test.run=^$", meta, data)
	child.Env = append(os.Environ(), crashEnv+"="+string(txn.StepWriteRecord))
	out, err := child.CombinedOutput()
	require.NoError(t, err, "%s", out)
	code, stdout, errOut := pairctl(t, "recover", meta, data)
	assert.Equal(t, exitOK, code, "%s %s", stdout, errOut)
	assert.Contains(t, stdout, "removed staged file")
	code, _, _ = pairctl(t, "verify", meta, data)
	assert.Equal(t, exitOK, code, "the old pair is intact")
}

func TestWriteFromStdin(t *testing.T) {
	meta, data := newPair(t)
	cmd := exec.Command(pairctlBin, "write", "-data-file", "-", meta, data)
	cmd.Stdin = strings.NewReader(`{"from": "stdin"}`)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	got, err := os.ReadFile(data)
	require.NoError(t, err)
	assert.Equal(t, `{"from": "stdin"}`, string(got))
	code, _, _ := pairctl(t, "verify", meta, data)
	assert.Equal(t, exitMismatch, code, "data written without -stamp metadata fails conda's check")
}

func TestBadUsageExits2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"show", "only-one-path"},
		{"holder"},
		{"write", "m", "d"},
		{"verify", "-bogus", "m", "d"},
	} {
		code, _, errOut := pairctl(t, args...)
		assert.Equal(t, exitUsage, code, "pairctl %q", args)
		assert.Contains(t, errOut, "usage", "pairctl %q", args)
	}
}

func TestMissingDirectoryExits1(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	code, _, errOut := pairctl(t, "show", filepath.Join(dir, "m"), filepath.Join(dir, "d"))
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "pairctl show:")
}
