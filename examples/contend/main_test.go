package main

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/examples/internal/progtest"
)

// contendBin is the contend program, built once by TestMain.
var contendBin string

// runDuration is how long each test run of contend lasts.
const runDuration = "1s"

func TestMain(m *testing.M) { progtest.Main(m, "contend", &contendBin) }

func contend(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return progtest.Run(t, "", contendBin, args...)
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
