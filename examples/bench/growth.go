//go:build unix

package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/txnpair/txnpair/txn"
)

// genChunk is the size of the writes the generator makes: large enough that
// txn's write buffer passes them straight through, small next to the data.
const genChunk = 256 << 10

// generator is a reader of n bytes that do not compress, produced a chunk at
// a time, so that a 1 GiB commit needs no 1 GiB slice.
type generator struct {
	n     int64
	chunk []byte
	seq   uint64
}

func newGenerator(n int64) *generator {
	return &generator{n: n, chunk: payload(genChunk, 4)}
}

// next varies the chunk so that no two are alike.
func (g *generator) next() {
	g.seq++
	for i := 0; i < 8; i++ {
		g.chunk[i] = byte(g.seq >> (8 * i))
	}
}

func (g *generator) Read(p []byte) (int, error) {
	if g.n == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.chunk[:min(int64(len(g.chunk)), g.n, int64(len(p)))])
	g.n -= int64(n)
	g.next()
	return n, nil
}

// WriteTo makes io.Copy hand the writer whole chunks, for ours and the
// baseline alike.
func (g *generator) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for g.n > 0 {
		n, err := w.Write(g.chunk[:min(int64(len(g.chunk)), g.n)])
		total += int64(n)
		g.n -= int64(n)
		if err != nil {
			return total, err
		}
		g.next()
	}
	return total, nil
}

// growthTarget is the largest ratio allowed at growthTargetFrom and up.
const (
	growthTarget     = 1.1
	growthTargetFrom = 64 << 20
	// rssTarget is the most the peak RSS may grow during the largest commit.
	rssTarget = 16 << 20
)

// growth is scenario 4.
func (b *bench) growth() ([]row, error) {
	var rows []row
	for _, g := range b.set.growth {
		od, err := b.subdir("growth-txn")
		if err != nil {
			return nil, err
		}
		bd, err := b.subdir("growth-base")
		if err != nil {
			return nil, err
		}
		ours, base := newPair(od), newPair(bd)
		seq := 0
		b.logf("growth %s", fmtBytes(g.size))
		so, sb, err := b.alternate(g.reps, func() error {
			seq++
			return commitTxn(ours, newGenerator(g.size), metaFor(seq), txn.Full)
		}, func() error {
			return commitRenameio(base, newGenerator(g.size), metaFor(seq))
		})
		if err != nil {
			return nil, err
		}
		target := 0.0
		if g.size >= growthTargetFrom {
			target = growthTarget
		}
		name := fmt.Sprintf("4. commit %s + 300 B, full", fmtBytes(g.size))
		rows = append(rows, latencyRows(name, "renameio + renameio + dir fsync", so, sb, target)...)
		// The files of a size are not needed once it is measured.
		os.RemoveAll(od)
		os.RemoveAll(bd)
	}

	largest := b.set.growth[len(b.set.growth)-1].size
	r := row{
		Scenario: fmt.Sprintf("4. peak RSS growth, commit of %s", fmtBytes(largest)),
		Metric:   "VmHWM − idle", Unit: unitBytes, BaseName: "renameio", N: 1,
		Target: "≤ " + fmtBytes(rssTarget),
	}
	if !hasPeakRSS {
		r.Note = "not measurable on " + runtime.GOOS
		r.Target = ""
		return append(rows, r), nil
	}
	ours, err := b.peakRSS("txn", largest)
	if err != nil {
		return nil, err
	}
	base, err := b.peakRSS("renameio", largest)
	if err != nil {
		return nil, err
	}
	r.Ours, r.Base = float64(ours), float64(base)
	if base > 0 {
		r.Ratio = r.Ours / r.Base
	}
	r.Met = ptr(ours <= rssTarget)
	return append(rows, r), nil
}

// peakRSS runs one commit of size bytes in a child process and returns how
// much its peak resident set grew beyond its idle one.
func (b *bench) peakRSS(which string, size int64) (int64, error) {
	d, err := b.subdir("rss-" + which)
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(d)
	out, err := exec.CommandContext(b.ctx, self(), childFlag, "rss",
		"-which", which, "-size", fmt.Sprint(size), "-dir", d).Output()
	if err != nil {
		return 0, fmt.Errorf("rss child: %w", exitErr(err))
	}
	var before, after int64
	if _, err := fmt.Sscanf(string(out), "rss %d %d", &before, &after); err != nil {
		return 0, fmt.Errorf("rss child said %q: %w", out, err)
	}
	return after - before, nil
}

// childRSS is the child's side of peakRSS: it resets the peak, commits and
// prints the peak before and after, in bytes.
func childRSS(args []string) error {
	fl := flag.NewFlagSet("rss", flag.ContinueOnError)
	which := fl.String("which", "txn", "txn or renameio")
	size := fl.Int64("size", 0, "bytes of data")
	dir := fl.String("dir", "", "directory")
	if err := fl.Parse(args); err != nil {
		return err
	}
	p := newPair(*dir)
	meta := metaFor(1)
	// Everything the commit needs is in place before the idle figure.
	gen := newGenerator(*size)
	runtime.GC()
	before, err := resetPeakRSS()
	if err != nil {
		return err
	}
	start := time.Now()
	switch *which {
	case "txn":
		err = commitTxn(p, gen, meta, txn.Full)
	case "renameio":
		err = commitRenameio(p, gen, meta)
	default:
		err = fmt.Errorf("unknown -which %q", *which)
	}
	if err != nil {
		return err
	}
	took := time.Since(start)
	after, err := peakRSS()
	if err != nil {
		return err
	}
	fmt.Printf("rss %d %d %d\n", before, after, took)
	return nil
}

// exitErr adds a child's stderr to its exit error.
func exitErr(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

// readLine reads one line from a child.
func readLine(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(s, "\n"), nil
}
