//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/txnpair/txnpair/lock"
)

// Targets and constants of scenario 2.
const (
	uncontendedTarget = 10 * time.Microsecond
	handoffP50Target  = 100 * time.Microsecond
	handoffP99Target  = time.Millisecond
	// pollInterval is the sleep of the conda-style polling loop between
	// two tries.
	pollInterval = 10 * time.Millisecond
	// The holder releases after a random delay in [holdMin, holdMin +
	// pollInterval), so that the release falls anywhere in the polling
	// loop's cycle, and the waiter is surely blocked by then.
	holdMin = time.Millisecond
)

// lockLatency is scenario 2.
func (b *bench) lockLatency() ([]row, error) {
	d, err := b.subdir("lock")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(d, "k.info.json")
	ctx := context.Background()
	f, err := os.OpenFile(filepath.Join(d, "bare.info.json"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	so, sb, err := b.alternate(b.set.lockReps, func() error {
		lk, err := lock.Acquire(ctx, path, lock.Exclusive)
		if err != nil {
			return err
		}
		return lk.Release()
	}, func() error {
		return bareLock(f.Fd())
	})
	if err != nil {
		return nil, err
	}
	var rows []row
	for _, p := range []float64{50, 99} {
		o, bs := so.pct(p), sb.pct(p)
		r := row{
			Scenario: "2. lock uncontended Acquire + Release", Metric: fmt.Sprintf("p%g", p),
			Unit: unitDuration, Ours: float64(o), Base: float64(bs), BaseName: bareLockName,
			Ratio: float64(o) / float64(bs), N: len(so),
		}
		if p == 50 {
			r.Target = "ours ≤ " + fmtDuration(uncontendedTarget)
			r.Met = ptr(o <= uncontendedTarget)
		}
		rows = append(rows, r)
	}

	hr, err := b.handoff(path)
	if err != nil {
		return nil, err
	}
	return append(rows, hr...), nil
}

// waiter is how the parent waits for the lock a child holds. acquire
// returns the function that releases what it got.
type waiter struct {
	name    string
	acquire func(path string) (func() error, error)
}

func released(lk *lock.Lock, err error) (func() error, error) {
	if err != nil {
		return nil, err
	}
	return lk.Release, nil
}

var (
	blocking = waiter{"Acquire, background context", func(path string) (func() error, error) {
		return released(lock.Acquire(context.Background(), path, lock.Exclusive))
	}}
	cancelable = waiter{"Acquire, cancelable context", func(path string) (func() error, error) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		return released(lock.Acquire(ctx, path, lock.Exclusive))
	}}
	// bare is the floor under Acquire: a blocking fcntl on a descriptor
	// opened beforehand, and nothing else.
	bare = waiter{"bare blocking fcntl", func(path string) (func() error, error) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		fd := f.Fd() // sets the descriptor blocking before the clock starts
		if err := bareWait(fd); err != nil {
			f.Close()
			return nil, err
		}
		return f.Close, nil
	}}
	polling = waiter{"TryAcquire + 10 ms sleeps", func(path string) (func() error, error) {
		for {
			lk, err := lock.TryAcquire(path, lock.Exclusive)
			if !errors.Is(err, lock.ErrLocked) {
				return released(lk, err)
			}
			time.Sleep(pollInterval)
		}
	}}
)

// handoff measures how long the lock takes to pass from a child process that
// releases it to this process, blocked waiting for it: from the child's clock
// reading just before its release to ours just after Acquire returns.
func (b *bench) handoff(path string) ([]row, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(b.ctx, self(), childFlag, "hold", "-path", path)
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	out := bufio.NewReader(outp)
	defer func() {
		in.Close()
		cmd.Wait()
	}()
	childErr := func(err error) error {
		return fmt.Errorf("lock holder: %w (%s)", err, strings.TrimSpace(stderr.String()))
	}

	rng := rand.New(rand.NewPCG(2, 2))
	once := func(w waiter) (time.Duration, error) {
		if _, err := io.WriteString(in, "hold\n"); err != nil {
			return 0, childErr(err)
		}
		if s, err := readLine(out); err != nil || s != "held" {
			return 0, childErr(fmt.Errorf("said %q, %v", s, err))
		}
		type got struct {
			release func() error
			at      time.Duration
			err     error
		}
		gc := make(chan got, 1)
		go func() {
			rel, err := w.acquire(path)
			gc <- got{rel, monoNow(), err}
		}()
		time.Sleep(holdMin + time.Duration(rng.Int64N(int64(pollInterval))))
		if _, err := io.WriteString(in, "release\n"); err != nil {
			return 0, childErr(err)
		}
		s, err := readLine(out)
		released, perr := strconv.ParseInt(strings.TrimPrefix(s, "released "), 10, 64)
		if err != nil || perr != nil {
			return 0, childErr(fmt.Errorf("said %q, %v", s, err))
		}
		g := <-gc
		if g.err != nil {
			return 0, g.err
		}
		return g.at - time.Duration(released), g.release()
	}

	waiters := []waiter{blocking, cancelable, bare, polling}
	s := make([]samples, len(waiters))
	for i := range b.set.warmup + b.set.handoffReps {
		for j, w := range waiters {
			if err := b.ctx.Err(); err != nil {
				return nil, err
			}
			d, err := once(w)
			if err != nil {
				return nil, fmt.Errorf("hand-off, %s: %w", w.name, err)
			}
			if i >= b.set.warmup {
				s[j] = append(s[j], d)
			}
		}
	}

	var rows []row
	base := s[len(s)-1]
	for j, w := range waiters[:len(waiters)-1] {
		if w.name == bare.name {
			for _, p := range []float64{50, 99} {
				o, bs := s[j].pct(p), base.pct(p)
				rows = append(rows, row{
					Scenario: "2. lock hand-off between processes, " + w.name + " (the floor)",
					Metric:   fmt.Sprintf("p%g", p), Unit: unitDuration,
					Ours: float64(o), Base: float64(bs), BaseName: "polling " + polling.name,
					Ratio: float64(o) / float64(bs), N: len(s[j]),
				})
			}
			continue
		}
		for _, p := range []float64{50, 99} {
			o, bs := s[j].pct(p), base.pct(p)
			target := handoffP50Target
			if p == 99 {
				target = handoffP99Target
			}
			rows = append(rows, row{
				Scenario: "2. lock hand-off between processes, " + w.name,
				Metric:   fmt.Sprintf("p%g", p), Unit: unitDuration,
				Ours: float64(o), Base: float64(bs), BaseName: "polling " + polling.name,
				Ratio: float64(o) / float64(bs), N: len(s[j]),
				Target: "ours ≤ " + fmtDuration(target), Met: ptr(o <= target),
			})
		}
	}
	return rows, nil
}

// childHold is the child's side of handoff. On "hold" it takes the lock and
// says "held"; on "release" it reads the monotonic clock, releases the lock
// and says "released" and the reading, in nanoseconds.
func childHold(args []string) error {
	fl := flag.NewFlagSet("hold", flag.ContinueOnError)
	path := fl.String("path", "", "the file to lock")
	if err := fl.Parse(args); err != nil {
		return err
	}
	in := bufio.NewReader(os.Stdin)
	var lk *lock.Lock
	for {
		cmd, err := readLine(in)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case cmd == "hold" && lk == nil:
			lk, err = lock.Acquire(context.Background(), *path, lock.Exclusive)
			if err != nil {
				return err
			}
			fmt.Println("held")
		case cmd == "release" && lk != nil:
			t := monoNow()
			if err := lk.Release(); err != nil {
				return err
			}
			lk = nil
			fmt.Println("released", int64(t))
		default:
			return fmt.Errorf("unexpected %q", cmd)
		}
	}
}
