package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/txnpair/txnpair/txn"
)

// unlockedName is the name of the writer that ignores the lock.
const unlockedName = "unlocked"

// maxPad bounds the padding that varies the data file's size.
const maxPad = 16 << 10

// state is the metadata: a counter and the data file's hash.
type state struct {
	Counter int    `json:"counter"`
	SHA256  string `json:"sha256"`
	Size    int    `json:"size"`
	Writer  string `json:"writer"`
}

// payload is the data file.
type payload struct {
	Counter int    `json:"counter"`
	Writer  string `json:"writer"`
	Pad     string `json:"pad"`
}

// report is what a writer process prints when it is done, as one JSON line.
type report struct {
	Writer       string   `json:"writer"`
	Commits      int      `json:"commits"`
	Reads        int      `json:"reads"`
	Inconsistent []string `json:"inconsistent"`
	WaitsNS      []int64  `json:"waits_ns"`
	Error        string   `json:"error,omitempty"`
}

// newPair returns the data and metadata of commit counter by writer.
func newPair(counter int, writer string) (meta, data []byte) {
	data, _ = json.Marshal(payload{counter, writer, strings.Repeat("x", rand.IntN(maxPad))})
	sum := sha256.Sum256(data)
	meta, _ = json.MarshalIndent(state{counter, hex.EncodeToString(sum[:]), len(data), writer}, "", "  ")
	return meta, data
}

// check returns the counter of a pair, or why the pair is inconsistent.
func check(meta, data []byte) (int, error) {
	var s state
	if err := json.Unmarshal(meta, &s); err != nil {
		return 0, fmt.Errorf("metadata is not JSON (%q): %v", truncate(meta), err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != s.SHA256 {
		return 0, fmt.Errorf("counter %d by %s: the data's SHA-256 is not the metadata's", s.Counter, s.Writer)
	}
	var p payload
	if err := json.Unmarshal(data, &p); err != nil || p.Counter != s.Counter {
		return 0, fmt.Errorf("counter %d in the metadata, %d in the data", s.Counter, p.Counter)
	}
	return s.Counter, nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

func initPair(meta, data string, o options) error {
	return txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		m, d := newPair(0, "init")
		if _, err := tx.Data().Write(d); err != nil {
			return err
		}
		_, err := tx.Meta().Write(m)
		return err
	}, txn.WithDurability(txn.NoSync))
}

// runChild is one Go writer: it alternates commits and reads until the
// duration has passed, then prints its report.
func runChild(o options, stdin io.Reader, stdout io.Writer) int {
	r := report{Writer: o.child, Inconsistent: []string{}, WaitsNS: []int64{}}
	defer func() {
		json.NewEncoder(stdout).Encode(r)
	}()
	if err := waitForStart(stdin); err != nil {
		r.Error = err.Error()
		return exitFailure
	}
	meta, data := filepath.Join(o.dir, metaName), filepath.Join(o.dir, dataName)
	var opts []txn.Option
	if o.noSync {
		opts = append(opts, txn.WithDurability(txn.NoSync))
	}
	last := 0
	seen := func(m, d []byte) {
		r.Reads++
		c, err := check(m, d)
		switch {
		case err != nil:
			r.Inconsistent = append(r.Inconsistent, err.Error())
		case c < last:
			r.Inconsistent = append(r.Inconsistent, fmt.Sprintf("counter went back from %d to %d", last, c))
		default:
			last = c
		}
	}
	ctx := context.Background()
	for deadline := time.Now().Add(o.duration); time.Now().Before(deadline); {
		if o.child == unlockedName {
			if err := unlockedCommit(meta, data, o.child); err != nil {
				r.Error = err.Error()
				return exitFailure
			}
			r.Commits++
			continue
		}
		m, d, err := txn.Read(ctx, meta, data, opts...)
		if err != nil {
			r.Error = err.Error()
			return exitFailure
		}
		seen(m, d)

		t0 := time.Now()
		tx, err := txn.BeginContext(ctx, meta, data, opts...)
		if err != nil {
			r.Error = err.Error()
			return exitFailure
		}
		r.WaitsNS = append(r.WaitsNS, int64(time.Since(t0)))
		err = func() error {
			defer tx.Rollback()
			m, err := tx.ReadMeta()
			if err != nil {
				return err
			}
			dr, err := tx.OpenData()
			if err != nil {
				return err
			}
			d, err := io.ReadAll(dr)
			dr.Close()
			if err != nil {
				return err
			}
			seen(m, d)
			nm, nd := newPair(last+1, o.child)
			if _, err := tx.Data().Write(nd); err != nil {
				return err
			}
			if _, err := tx.Meta().Write(nm); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if err != nil {
			r.Error = err.Error()
			return exitFailure
		}
		last++
		r.Commits++
	}
	return exitOK
}

// unlockedCommit does what a careless program does: it reads the pair and
// replaces both files without taking the lock.
func unlockedCommit(meta, data, writer string) error {
	m, err := os.ReadFile(meta)
	if err != nil {
		return err
	}
	var s state
	json.Unmarshal(m, &s)
	nm, nd := newPair(s.Counter+1, writer)
	tmp := data + ".unlocked-tmp"
	if err := os.WriteFile(tmp, nd, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, data); err != nil {
		return err
	}
	f, err := os.OpenFile(meta, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(nm)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// finalCheck reads the pair under the lock once all writers are done and
// returns its counter.
func finalCheck(meta, data string) (int, error) {
	m, d, err := txn.Read(context.Background(), meta, data)
	if err != nil {
		return 0, err
	}
	return check(m, d)
}
