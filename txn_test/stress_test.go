package txn_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/txnpair/txnpair/txn"
)

// Shape of the stress test.
const (
	stressProcs      = 4               // writer processes of this package
	stressGoroutines = 4               // goroutines in each
	stressDuration   = 3 * time.Second // how long they run
	stressRaceFactor = 3               // how much shorter under the race detector
	// stressGrace is how long past stressDuration the writers may take to
	// finish; a writer still running then has deadlocked.
	stressGrace = time.Minute
)

// Environment of a stress child.
const (
	envStressID  = "TXNPAIR_TEST_STRESS_ID"
	envStressFor = "TXNPAIR_TEST_STRESS_FOR"
	envStressG   = "TXNPAIR_TEST_STRESS_G"
)

// stressState is the metadata of the stress pair: a counter that every
// update increments, and the sha256 of the data file.
type stressState struct {
	Counter int    `json:"counter"`
	SHA256  string `json:"sha256"`
}

// stressResult is what one writer reports.
type stressResult struct {
	Commits      int      `json:"commits"`
	Reads        int      `json:"reads"`
	Inconsistent int      `json:"inconsistent"`
	Errors       []string `json:"errors"`
}

func (r *stressResult) add(o stressResult) {
	r.Commits += o.Commits
	r.Reads += o.Reads
	r.Inconsistent += o.Inconsistent
	r.Errors = append(r.Errors, o.Errors...)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkState parses meta and reports whether data matches it.
func checkState(meta, data []byte) (stressState, bool, error) {
	var st stressState
	if err := json.Unmarshal(meta, &st); err != nil {
		return st, false, fmt.Errorf("metadata %q: %w", meta, err)
	}
	return st, st.SHA256 == sha256Hex(data), nil
}

// TestConcurrentUpdatesLoseNothing runs stressProcs processes of
// stressGoroutines goroutines each, plus a Python writer following conda's
// protocol, all updating one pair and reading it for stressDuration. Every
// read must find data matching the metadata's sha256, and the final counter
// must equal the number of successful commits of all writers: no lost
// update, no interleaving with conda's writer. A writer that does not finish
// in time has deadlocked. Under -race, the race detector watches every
// process.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	dur := stressDuration
	if raceEnabled {
		dur /= stressRaceFactor
	}
	meta, data := pairIn(tempDir(t))
	initial := []byte("initial data\n")
	st, _ := json.Marshal(stressState{SHA256: sha256Hex(initial)})
	writePair(t, meta, data, version{meta: st, data: initial})

	ctx, cancel := context.WithTimeout(context.Background(), dur+stressGrace)
	defer cancel()
	type proc struct {
		name   string
		cmd    *exec.Cmd
		stdout bytes.Buffer
		stderr bytes.Buffer
	}
	var procs []*proc
	for i := range stressProcs {
		p := &proc{name: "go writer " + strconv.Itoa(i)}
		p.cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
		p.cmd.Env = append(childEnviron(), envRole+"=stress", envMeta+"="+meta, envData+"="+data,
			envStressID+"="+strconv.Itoa(i), envStressFor+"="+dur.String(),
			envStressG+"="+strconv.Itoa(stressGoroutines))
		procs = append(procs, p)
	}
	if py, err := exec.LookPath("python3"); err != nil || runtime.GOOS == "windows" {
		t.Log("no python3 (or Windows): running without the conda-protocol writer")
	} else {
		script, err := filepath.Abs(filepath.Join("testdata", "conda_writer.py"))
		require.NoError(t, err)
		p := &proc{name: "python conda writer"}
		p.cmd = exec.CommandContext(ctx, py, script, meta, data, strconv.FormatFloat(dur.Seconds(), 'f', 3, 64))
		procs = append(procs, p)
	}
	for _, p := range procs {
		p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
		require.NoError(t, p.cmd.Start(), p.name)
	}
	// This process reads meanwhile, with its own goroutines.
	var readers sync.WaitGroup
	var mu sync.Mutex
	var total stressResult
	for range stressGoroutines {
		readers.Go(func() {
			r := stressReads(meta, data, time.Now().Add(dur))
			mu.Lock()
			total.add(r)
			mu.Unlock()
		})
	}
	for _, p := range procs {
		err := p.cmd.Wait()
		require.NoError(t, ctx.Err(), "%s did not finish (deadlock?)\nstderr:\n%s", p.name, p.stderr.String())
		require.NoError(t, err, "%s failed\nstderr:\n%s", p.name, p.stderr.String())
		assert.NotContains(t, p.stderr.String(), "DATA RACE", p.name)
		var r stressResult
		require.NoError(t, json.Unmarshal(lastLine(p.stdout.Bytes()), &r), "%s reported %q", p.name, p.stdout.String())
		assert.Positive(t, r.Commits, "%s never committed", p.name)
		t.Logf("%s: %d commits, %d reads", p.name, r.Commits, r.Reads)
		mu.Lock()
		total.add(r)
		mu.Unlock()
	}
	readers.Wait()

	final := readPair(t, meta, data)
	fs, ok, err := checkState(final.meta, final.data)
	require.NoError(t, err)
	assert.True(t, ok, "the final pair is inconsistent")
	assert.Empty(t, total.Errors, "errors")
	assert.Zero(t, total.Inconsistent, "reads that found data not matching the metadata")
	assert.Equal(t, total.Commits, fs.Counter, "final counter against successful commits: lost updates")
	assert.Empty(t, leftovers(t, meta, data), "files left beside the pair")
	t.Logf("%d commits and %d reads in %v, all consistent", total.Commits, total.Reads, dur)
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// stressReads reads the pair until deadline, checking each read.
func stressReads(meta, data string, deadline time.Time) stressResult {
	var r stressResult
	for time.Now().Before(deadline) {
		r.readOnce(meta, data)
	}
	return r
}

// readOnce reads the pair once and checks that the data matches the
// metadata.
func (r *stressResult) readOnce(meta, data string) {
	m, d, err := txn.Read(context.Background(), meta, data)
	if err != nil {
		r.Errors = append(r.Errors, "read: "+err.Error())
		return
	}
	r.Reads++
	if _, ok, err := checkState(m, d); err != nil {
		r.Errors = append(r.Errors, "read: "+err.Error())
	} else if !ok {
		r.Inconsistent++
	}
}

// stressUpdate increments the counter and replaces the data, checking under
// the lock that the pair it starts from is consistent.
func stressUpdate(meta, data string, id, g, seq int, dur txn.Durability) (inconsistent bool, err error) {
	err = txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		m, err := tx.ReadMeta()
		if err != nil {
			return err
		}
		r, err := tx.OpenData()
		if err != nil {
			return err
		}
		d, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return err
		}
		st, ok, err := checkState(m, d)
		if err != nil {
			return err
		}
		inconsistent = !ok
		line := fmt.Sprintf("go writer %d goroutine %d seq %d\n", id, g, seq)
		nd := bytes.Repeat([]byte(line), 1+seq%64)
		if _, err := tx.Data().Write(nd); err != nil {
			return err
		}
		st.Counter++
		st.SHA256 = sha256Hex(nd)
		return json.NewEncoder(tx.Meta()).Encode(st)
	}, txn.WithDurability(dur))
	return inconsistent, err
}

// childStress is a stress writer: goroutines that alternate updates and
// reads until the time is up. Odd writers commit without syncing.
func childStress() error {
	meta, data := os.Getenv(envMeta), os.Getenv(envData)
	id, _ := strconv.Atoi(os.Getenv(envStressID))
	g, _ := strconv.Atoi(os.Getenv(envStressG))
	dur, err := time.ParseDuration(os.Getenv(envStressFor))
	if err != nil {
		return err
	}
	durability := txn.Full
	if id%2 == 1 {
		durability = txn.NoSync
	}
	deadline := time.Now().Add(dur)
	var mu sync.Mutex
	var total stressResult
	var wg sync.WaitGroup
	for gi := range g {
		wg.Go(func() {
			var r stressResult
			for seq := 0; time.Now().Before(deadline); seq++ {
				if seq%2 == 1 {
					r.readOnce(meta, data)
					continue
				}
				bad, err := stressUpdate(meta, data, id, gi, seq, durability)
				if bad {
					r.Inconsistent++
				}
				if err != nil {
					r.Errors = append(r.Errors, "update: "+err.Error())
					if !errors.Is(err, txn.ErrIncomplete) {
						continue
					}
					// Its record is durable: recovery applies it, so
					// it counts, though it is an error too.
				}
				r.Commits++
			}
			mu.Lock()
			total.add(r)
			mu.Unlock()
		})
	}
	wg.Wait()
	if total.Errors == nil {
		total.Errors = []string{}
	}
	b, err := json.Marshal(total)
	if err != nil {
		return err
	}
	report("%s", b)
	return nil
}
