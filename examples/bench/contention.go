//go:build unix

package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/txnpair/txnpair/txn"
)

// Targets of scenario 3.
const (
	// scalingTarget is the least aggregate rate of scalingProcs processes,
	// as a share of one process's rate.
	scalingTarget = 0.8
	scalingProcs  = 8
	// fairnessTarget is the least share of the mean that the process with
	// the fewest commits may have.
	fairnessTarget = 1.0 / 3
	// startDelay lets every child reach its start line before the
	// warm-up starts.
	startDelay = 50 * time.Millisecond
)

// contention is scenario 3.
func (b *bench) contention() ([]row, error) {
	var rows []row
	for _, d := range []txn.Durability{txn.NoSync, txn.Full} {
		var single float64
		for _, n := range b.set.procs {
			b.logf("contention %s, %d processes", d, n)
			counts, err := b.commitRace(d, n)
			if err != nil {
				return nil, fmt.Errorf("%s, %d processes: %w", d, n, err)
			}
			b.logf("commits per process: %v", counts)
			total, fewest := sum(counts), slices.Min(counts)
			rate := float64(total) / b.set.window.Seconds()
			scen := fmt.Sprintf("3. contention, %s, %d process", d, n)
			if n == 1 {
				single = rate
				rows = append(rows, row{Scenario: scen, Metric: "commits/s", Unit: unitRate, Ours: rate, N: n})
				continue
			}
			scen += "es"
			agg := row{Scenario: scen, Metric: "aggregate commits/s", Unit: unitRate, Ours: rate, N: n}
			if single > 0 {
				agg.Base, agg.BaseName, agg.Ratio = single, "1 process", rate/single
				if n == scalingProcs {
					agg.Target = fmt.Sprintf("≥ %.2g×", scalingTarget)
					agg.Met = ptr(agg.Ratio >= scalingTarget)
				}
			}
			mean := float64(total) / float64(n)
			fair := row{
				Scenario: scen, Metric: "fewest ÷ mean commits per process", Unit: unitRatio, N: n,
				Target: fmt.Sprintf("≥ %.2f", fairnessTarget),
				Note:   fmt.Sprintf("fewest %d, mean %.0f", fewest, mean),
			}
			if mean > 0 {
				fair.Ours = float64(fewest) / mean
			}
			fair.Met = ptr(fair.Ours >= fairnessTarget)
			rows = append(rows, agg, fair)
		}
	}
	return rows, nil
}

// commitRace starts n child processes that commit to one pair for the
// window, all starting and stopping at the same instant, and returns how
// many commits each completed within it.
func (b *bench) commitRace(d txn.Durability, n int) ([]int, error) {
	dir, err := b.subdir(fmt.Sprintf("race-%s-%d", d, n))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	p := newPair(dir)
	type proc struct {
		cmd    *exec.Cmd
		in     io.WriteCloser
		out    *bufio.Reader
		stderr bytes.Buffer
	}
	procs := make([]*proc, n)
	defer func() {
		for _, c := range procs {
			if c != nil {
				c.in.Close()
				c.cmd.Wait()
			}
		}
	}()
	for i := range procs {
		c := &proc{}
		c.cmd = exec.CommandContext(b.ctx, self(), childFlag, "commit",
			"-meta", p.meta, "-data", p.data, "-durability", d.String(), "-id", fmt.Sprint(i))
		c.cmd.Stderr = &c.stderr
		if c.in, err = c.cmd.StdinPipe(); err != nil {
			return nil, err
		}
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := c.cmd.Start(); err != nil {
			return nil, err
		}
		c.out = bufio.NewReader(out)
		procs[i] = c
	}
	fail := func(c *proc, err error) error {
		return fmt.Errorf("child: %w (%s)", err, strings.TrimSpace(c.stderr.String()))
	}
	for _, c := range procs {
		if s, err := readLine(c.out); err != nil || s != "ready" {
			return nil, fail(c, fmt.Errorf("said %q, %v", s, err))
		}
	}
	warm := monoNow() + startDelay
	start := warm + b.set.warmWindow
	end := start + b.set.window
	for _, c := range procs {
		if _, err := fmt.Fprintf(c.in, "go %d %d %d\n", warm, start, end); err != nil {
			return nil, fail(c, err)
		}
	}
	counts := make([]int, n)
	var vcsw, ivcsw, cpu int64
	for i, c := range procs {
		s, err := readLine(c.out)
		var v, iv, ut, st int64
		if err == nil {
			_, err = fmt.Sscanf(s, "done %d %d %d %d %d", &counts[i], &v, &iv, &ut, &st)
		}
		if err != nil {
			return nil, fail(c, fmt.Errorf("said %q, %v", s, err))
		}
		vcsw, ivcsw, cpu = vcsw+v, ivcsw+iv, cpu+ut+st
	}
	if total := sum(counts); total > 0 {
		b.logf("per commit: %.1f voluntary and %.1f involuntary context switches, %s of CPU (the children's whole life)",
			float64(vcsw)/float64(total), float64(ivcsw)/float64(total), time.Duration(cpu/int64(total)))
	}
	return counts, nil
}

// childCommit is the child's side of commitRace: it says "ready", waits for
// "go warm start end" (monotonic nanoseconds), commits from warm on and says
// "done" and how many commits it completed between start and end.
func childCommit(args []string) error {
	fl := flag.NewFlagSet("commit", flag.ContinueOnError)
	meta := fl.String("meta", "", "metadata file")
	data := fl.String("data", "", "data file")
	dur := fl.String("durability", "full", "full or nosync")
	id := fl.Int("id", 0, "this child's number")
	if err := fl.Parse(args); err != nil {
		return err
	}
	d := txn.Full
	switch *dur {
	case txn.Full.String():
	case txn.NoSync.String():
		d = txn.NoSync
	default:
		return fmt.Errorf("unknown durability %q", *dur)
	}
	p := pairPaths{meta: *meta, data: *data}
	payloadData := payload(smallData, uint64(*id))
	fmt.Println("ready")
	line, err := readLine(bufio.NewReader(os.Stdin))
	if err != nil {
		return err
	}
	var warm, start, end time.Duration
	if _, err := fmt.Sscanf(line, "go %d %d %d", &warm, &start, &end); err != nil {
		return errors.New("expected go warm start end, got " + line)
	}
	sleepUntil(warm)
	count := 0
	for i := 0; ; i++ {
		if err := commitTxn(p, bytes.NewReader(payloadData), metaFor(*id<<24|i), d); err != nil {
			return err
		}
		t := monoNow()
		if t > end {
			break
		}
		if t >= start {
			count++
		}
	}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	fmt.Println("done", count, ru.Nvcsw, ru.Nivcsw, ru.Utime.Nano(), ru.Stime.Nano())
	return nil
}

func sum(s []int) int {
	t := 0
	for _, v := range s {
		t += v
	}
	return t
}
