package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// contendBin is the contend program, built once by TestMain.
var contendBin string

// runDuration is how long each test run of contend lasts.
const runDuration = "1s"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "contend-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	contendBin = filepath.Join(dir, "contend")
	if runtime.GOOS == "windows" {
		contendBin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", contendBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func contend(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(contendBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), errb.String()
	}
	require.NoError(t, err)
	return 0, out.String(), errb.String()
}

var commitsRE = regexp.MustCompile(`commits:\s+(\d+) `)

func TestContendReportsEveryReadConsistent(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Log("python3 not found: running without the conda-protocol writer")
	}
	code, out, errOut := contend(t, "-n", "2", "-duration", runDuration, "-no-sync")
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "consistent: yes\n")
	assert.Contains(t, out, "no update lost")
	assert.Contains(t, out, "lock wait: p50 ")
	m := commitsRE.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	assert.Positive(t, n, "the writers committed")
	if _, err := exec.LookPath("python3"); err == nil {
		assert.Regexp(t, `python-conda [1-9]`, out, "the conda-protocol writer committed too")
	}
}

// TestContendCatchesAnUnlockedWriter shows that the checks have teeth: a
// writer that ignores the lock makes them fail.
func TestContendCatchesAnUnlockedWriter(t *testing.T) {
	code, out, _ := contend(t, "-n", "2", "-duration", runDuration, "-no-sync", "-python=false", "-unlocked-writer")
	assert.Equal(t, exitFailure, code, out)
	assert.Contains(t, out, "consistent: NO\n")
}

func TestContendBadUsageExits2(t *testing.T) {
	code, _, _ := contend(t, "-n", "0")
	assert.Equal(t, exitUsage, code)
	code, _, _ = contend(t, "extra")
	assert.Equal(t, exitUsage, code)
}
