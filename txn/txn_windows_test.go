package txn_test

// Windows tests of commits, rollbacks and recovery, run under Wine in CI
// (.ci/wine-test runs the tests named TestWindows*). Multi-process tests
// re-run this test binary as the child.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/windows"

	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/lock"
	"github.com/txnpair/txnpair/txn"
)

const (
	winChildEnv = "TXNPAIR_TXN_WINDOWS_CHILD" // the child's role
	winMetaEnv  = "TXNPAIR_TXN_WINDOWS_META"
	winDataEnv  = "TXNPAIR_TXN_WINDOWS_DATA"
	winStepEnv  = "TXNPAIR_TXN_WINDOWS_STEP" // the step a "commit" child stops at
)

// winPair returns the paths of a pair in a new directory. Wine 8.0 does not
// implement FileDispositionInformationEx, so os.RemoveAll (and t.TempDir's
// clean-up) fails there; the clean-up removes entries one by one.
func winPair(t *testing.T) (dir, meta, data string) {
	t.Helper()
	dir = testDir(t)
	return dir, filepath.Join(dir, "497deca9.info.json"), filepath.Join(dir, "497deca9.json")
}

func winUnderWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

func winCommit(t *testing.T, meta, data, m, d string) {
	t.Helper()
	require.NoError(t, txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		if _, err := tx.Meta().Write([]byte(m)); err != nil {
			return err
		}
		_, err := tx.Data().Write([]byte(d))
		return err
	}))
}

func winRead(t *testing.T, meta, data string) (string, string) {
	t.Helper()
	m, d, err := txn.Read(context.Background(), meta, data)
	require.NoError(t, err)
	return string(m), string(d)
}

// winNames lists dir: after any commit, rollback or recovery it must hold
// only the pair.
func winNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// winChild is a copy of this test binary in a role, talking line by line.
type winChild struct {
	cmd *exec.Cmd
	in  io.WriteCloser // kept open: a child may block reading it
	out *bufio.Scanner
}

func startWinChild(t *testing.T, role, meta, data string, env ...string) *winChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), append(env, winChildEnv+"="+role, winMetaEnv+"="+meta, winDataEnv+"="+data)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &winChild{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		c.in.Close()
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

func (c *winChild) expect(t *testing.T, prefix string) string {
	t.Helper()
	for c.out.Scan() {
		line := strings.TrimRight(c.out.Text(), "\r")
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return rest
		}
		require.Failf(t, "unexpected line from child", "want %q, got %q", prefix, line)
	}
	require.Failf(t, "child ended", "want %q: %v", prefix, c.out.Err())
	return ""
}

// runWinChild plays the role this process was started in, if any, and exits.
func runWinChild() {
	role := os.Getenv(winChildEnv)
	if role == "" {
		return
	}
	meta, data := os.Getenv(winMetaEnv), os.Getenv(winDataEnv)
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", role, err)
		os.Exit(2)
	}
	switch role {
	case "commit":
		// Commit a new pair, stopping at the step named in the
		// environment until the parent kills the process.
		stop := txn.Step(os.Getenv(winStepEnv))
		hook := func(s txn.Step) error {
			if s == stop {
				fmt.Println("at", s)
				os.Stdin.Read(make([]byte, 1)) // the parent kills us here
				fail(errors.New("not killed"))
			}
			return nil
		}
		tx, err := txn.Begin(meta, data, txn.WithStepHook(hook))
		if err != nil {
			fail(err)
		}
		tx.Meta().Write([]byte("m2 new metadata"))
		tx.Data().Write([]byte("d2 new data"))
		fail(fmt.Errorf("commit returned: %v", tx.Commit()))
	case "read":
		// Read the pair once the lock is seen held, so the read waits.
		h, err := lock.Holder(meta)
		if err != nil {
			fail(err)
		}
		if !h.Held {
			fail(errors.New("the lock is not held"))
		}
		fmt.Println("waiting")
		m, d, err := txn.Read(context.Background(), meta, data)
		if err != nil {
			fail(err)
		}
		fmt.Printf("read %s|%s\n", m, d)
		os.Exit(0)
	}
	fail(errors.New("unknown role"))
}

func TestWindowsCommit_ReplacesThePairAndRollbackKeepsIt(t *testing.T) {
	dir, meta, data := winPair(t)
	winCommit(t, meta, data, "m1", "d1")
	m, d := winRead(t, meta, data)
	assert.Equal(t, "m1", m)
	assert.Equal(t, "d1", d)

	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	_, err = tx.Meta().Write([]byte("m2 never committed"))
	require.NoError(t, err)
	_, err = tx.Data().Write([]byte("d2 never committed"))
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())
	m, d = winRead(t, meta, data)
	assert.Equal(t, "m1", m, "rollback keeps the metadata")
	assert.Equal(t, "d1", d, "rollback keeps the data")
	assert.ElementsMatch(t, []string{"497deca9.info.json", "497deca9.json"}, winNames(t, dir), "no staged file or record is left")

	winCommit(t, meta, data, "m3 is longer than the first", "d3")
	m, d = winRead(t, meta, data)
	assert.Equal(t, "m3 is longer than the first", m)
	assert.Equal(t, "d3", d)
	winCommit(t, meta, data, "m4", "d4")
	m, _ = winRead(t, meta, data)
	assert.Equal(t, "m4", m, "a shorter metadata file is cut to length")
}

func TestWindowsCommit_KeepsTheMetadataFileAndReplacesTheDataFile(t *testing.T) {
	_, meta, data := winPair(t)
	winCommit(t, meta, data, "m1", "d1")
	metaID, err := fsutil.PathID(meta)
	require.NoError(t, err)
	dataID, err := fsutil.PathID(data)
	require.NoError(t, err)
	winCommit(t, meta, data, "m2", "d2")
	metaID2, err := fsutil.PathID(meta)
	require.NoError(t, err)
	dataID2, err := fsutil.PathID(data)
	require.NoError(t, err)
	assert.Equal(t, metaID, metaID2, "the metadata file is written in place: it is the lock's home")
	assert.NotEqual(t, dataID, dataID2, "the data file is replaced by MoveFileEx")
}

// TestWindowsCommit_KilledAtEveryStepRecovers kills a committing process at
// each commit step and checks that the next Read finds exactly the old pair
// (before the record is durable) or the new one (after), and nothing left.
func TestWindowsCommit_KilledAtEveryStepRecovers(t *testing.T) {
	runWinChild()
	// The pair a kill at each step must leave. At sync-record the record
	// is complete but not yet synced: a killed process leaves it whole (the
	// new pair), a power loss might not (the old one).
	const wantOld, wantNew, wantEither = "old", "new", "either"
	want := map[txn.Step]string{
		txn.StepWriteRecord: wantOld, txn.StepSyncRecord: wantEither,
		txn.StepRenameData: wantNew, txn.StepWriteMeta: wantNew, txn.StepSyncApplied: wantNew,
		txn.StepRemoveRecord: wantNew, txn.StepRelease: wantNew,
	}
	oldPair := [2]string{"m1 old metadata, longer than the new", "d1 old data"}
	newPair := [2]string{"m2 new metadata", "d2 new data"}
	for _, step := range txn.Steps() {
		w, ok := want[step]
		if !ok {
			continue // a recovery step
		}
		t.Run(string(step), func(t *testing.T) {
			dir, meta, data := winPair(t)
			winCommit(t, meta, data, oldPair[0], oldPair[1])

			c := startWinChild(t, "commit", meta, data, winStepEnv+"="+string(step))
			c.expect(t, "at ")
			l, err := lock.TryAcquire(meta, lock.Exclusive)
			if err == nil {
				l.Release()
			}
			require.ErrorIs(t, err, lock.ErrLocked, "the committing child holds the lock")
			require.NoError(t, c.cmd.Process.Kill())
			c.cmd.Wait()

			m, d := winRead(t, meta, data)
			got := [2]string{m, d}
			switch w {
			case wantOld:
				assert.Equal(t, oldPair, got)
			case wantNew:
				assert.Equal(t, newPair, got)
			default:
				assert.Contains(t, [][2]string{oldPair, newPair}, got, "a whole pair, old or new")
			}
			assert.ElementsMatch(t, []string{"497deca9.info.json", "497deca9.json"}, winNames(t, dir), "recovery leaves only the pair")
		})
	}
}

// TestWindowsCommit_WritesMetadataInPlaceWhileAnotherProcessWaits commits
// while another process waits in Read for the lock on the same metadata
// file: the waiter must wake on the same file and read the new pair.
func TestWindowsCommit_WritesMetadataInPlaceWhileAnotherProcessWaits(t *testing.T) {
	runWinChild()
	_, meta, data := winPair(t)
	winCommit(t, meta, data, "m1 old metadata, longer than the new", "d1")

	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	defer tx.Rollback()
	c := startWinChild(t, "read", meta, data)
	c.expect(t, "waiting")
	_, err = tx.Meta().Write([]byte("m2"))
	require.NoError(t, err)
	_, err = tx.Data().Write([]byte("d2"))
	require.NoError(t, err)
	require.NoError(t, tx.Commit())

	assert.Equal(t, "m2|d2", c.expect(t, "read "), "the waiting reader sees the whole new pair")
	require.NoError(t, c.cmd.Wait())
}

// TestWindowsCommit_FailsWhileAReaderHoldsTheDataFileOpen documents what
// Windows does when a program holds the data file open without the lock
// (Go's os.Open does not share delete access): MoveFileEx could not replace
// it. Commit finds that out before its point of no return and rolls back,
// leaving the old pair and nothing else; once the reader closes, the same
// commit goes through. txn does not retry or wait: the reader is outside the
// lock protocol.
func TestWindowsCommit_FailsWhileAReaderHoldsTheDataFileOpen(t *testing.T) {
	dir, meta, data := winPair(t)
	winCommit(t, meta, data, "m1", "d1")

	r, err := os.Open(data)
	require.NoError(t, err)
	defer r.Close()
	update := func() error {
		return txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
			tx.Meta().Write([]byte("m2"))
			_, err := tx.Data().Write([]byte("d2"))
			return err
		})
	}
	err = update()
	require.Error(t, err)
	assert.NotErrorIs(t, err, txn.ErrIncomplete, "the commit is refused before its point of no return")
	assert.ErrorIs(t, err, windows.ERROR_SHARING_VIOLATION)
	m, d := winRead(t, meta, data)
	assert.Equal(t, "m1", m, "the old pair stays")
	assert.Equal(t, "d1", d)
	assert.ElementsMatch(t, []string{"497deca9.info.json", "497deca9.json"}, winNames(t, dir))

	require.NoError(t, r.Close())
	require.NoError(t, update(), "with the reader gone the commit goes through")
	m, d = winRead(t, meta, data)
	assert.Equal(t, "m2", m)
	assert.Equal(t, "d2", d)
	assert.ElementsMatch(t, []string{"497deca9.info.json", "497deca9.json"}, winNames(t, dir))
}

func TestWindowsView_HoldsTheDataFileOnlyUnderTheSharedLock(t *testing.T) {
	_, meta, data := winPair(t)
	winCommit(t, meta, data, "m1", "d1")
	err := txn.View(context.Background(), meta, data, func(m []byte, _ io.Reader) error {
		l, err := lock.TryAcquire(meta, lock.Exclusive)
		if err == nil {
			l.Release()
		}
		assert.ErrorIs(t, err, lock.ErrLocked, "a commit would wait for the view")
		return nil
	})
	require.NoError(t, err)
	winCommit(t, meta, data, "m2", "d2")
	m, d := winRead(t, meta, data)
	assert.Equal(t, "m2", m)
	assert.Equal(t, "d2", d)
}

func TestWindowsLock_IsMandatoryForReadersThatSkipIt(t *testing.T) {
	if winUnderWine() {
		t.Skip("Wine differs from Windows: its byte-range locks are advisory, so a reader that skips the lock is not refused")
	}
	_, meta, data := winPair(t)
	winCommit(t, meta, data, "metadata long enough to cover byte 21 of the file", "d1")
	tx, err := txn.Begin(meta, data)
	require.NoError(t, err)
	defer tx.Rollback()
	_, err = os.ReadFile(meta)
	assert.ErrorIs(t, err, windows.ERROR_LOCK_VIOLATION, "a plain read of the metadata during a transaction")
}
