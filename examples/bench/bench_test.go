//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary stand in for the program: the scenarios that
// need other processes start copies of os.Executable() with the child flag.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childFlag {
		os.Exit(child(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// runBench runs the program with args and returns what it printed.
func runBench(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append(args, "-dir", t.TempDir()), &stdout, &stderr)
	require.Equal(t, 0, code, "bench %v failed: %s", args, stderr.String())
	return stdout.String()
}

// tableRows returns the cells of the markdown table's body rows.
func tableRows(t *testing.T, out string) [][]string {
	t.Helper()
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| scenario ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	return rows
}

func TestSmokeRunFillsEveryScenario(t *testing.T) {
	out := runBench(t, "-smoke")
	assert.Contains(t, out, "- filesystem: ")
	assert.Contains(t, out, "- machine: ")
	rows := tableRows(t, out)
	require.NotEmpty(t, rows, "no table in:\n%s", out)

	for _, r := range rows {
		if assert.Len(t, r, 7, "row %q", r) {
			for i, c := range r[:3] {
				assert.NotEmpty(t, c, "cell %d of row %q", i, r)
			}
			assert.Contains(t, []string{"yes", "**no**", "—"}, r[6], "met cell of row %q", r)
		}
	}
	// Every scenario, and every case within it, has its rows.
	for _, want := range []string{
		"1. commit 4 KiB + 300 B, full | p50",
		"1. commit 4 KiB + 300 B, full | p99",
		"1. commit 4 KiB + 300 B, nosync | p50",
		"1. commit 4 KiB + 300 B, nosync | p99",
		"1. commit 4 KiB + 300 B, nosync, 1000 other files in the directory | p50",
		"2. lock uncontended Acquire + Release | p50",
		"2. lock hand-off between processes, Acquire, background context | p50",
		"2. lock hand-off between processes, Acquire, background context | p99",
		"3. contention, nosync, 1 process | commits/s",
		"3. contention, nosync, 8 processes | aggregate commits/s",
		"3. contention, nosync, 8 processes | fewest ÷ mean",
		"3. contention, full, 1 process | commits/s",
		"3. contention, full, 8 processes | aggregate commits/s",
		"3. contention, full, 8 processes | fewest ÷ mean",
		"4. commit 4 KiB + 300 B, full | p50",
		"4. commit 1 MiB + 300 B, full | p50",
		"4. peak RSS growth, commit of 1 MiB | VmHWM",
		"5. read 4 KiB + 300 B | p50",
	} {
		assert.Contains(t, out, "| "+want, "missing row")
	}
	// Rows that compare with a baseline name it and give a ratio.
	for _, r := range rows {
		if len(r) == 7 && r[3] != "—" {
			assert.Contains(t, r[3], "(", "baseline of row %q is unnamed", r)
		}
	}
}

func TestJSONHasEnvironmentAndRows(t *testing.T) {
	out := runBench(t, "-smoke", "-json", "-only", "5")
	var res result
	require.NoError(t, json.Unmarshal([]byte(out), &res), "output:\n%s", out)
	assert.NotEmpty(t, res.Env.FSType)
	assert.NotEmpty(t, res.Env.Kernel)
	assert.Positive(t, res.Env.Cores)
	require.Len(t, res.Rows, 2)
	for _, r := range res.Rows {
		assert.Equal(t, "5. read 4 KiB + 300 B", r.Scenario)
		assert.Equal(t, unitDuration, r.Unit)
		assert.Equal(t, smoke.readReps, r.N)
	}
}

func TestUnknownScenarioIsRejected(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"-only", "6", "-dir", t.TempDir()}, &stdout, &stderr)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr.String(), "not a scenario")
	assert.Empty(t, stdout.String())
}

func TestRunLeavesNoFilesBehind(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-smoke", "-only", "1,5", "-dir", dir}, &stdout, &stderr), stderr.String())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}
