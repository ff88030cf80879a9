//go:build unix

// Command bench measures txnpair against the baselines it replaces, side by
// side in one run, and prints one markdown table: scenario, ours, baseline,
// ratio (ours/baseline), target, and whether the target is met.
//
//	go run ./examples/bench            # thorough: a few minutes
//	go run ./examples/bench -quick     # under a minute, for CI
//	go run ./examples/bench -json      # machine-readable
//
// The scenarios:
//
//  1. Commit latency of a 4 KiB data file and a 300 B metadata file: a txn
//     commit at Full against two renameio.WriteFile calls and one directory
//     fsync (durable, but not atomic as a pair); at NoSync against two plain
//     write-and-rename calls, alone in the directory and among 1000 other
//     files, as in a conda cache.
//  2. Lock: an uncontended Acquire and Release against a bare fcntl lock and
//     unlock on an open descriptor; the latency of a hand-off between two
//     processes, blocked in Acquire, against a conda-style polling loop
//     (TryAcquire, then a 10 ms sleep).
//  3. Contention: 1, 2, 4 and 8 processes committing to one pair for a fixed
//     time; the aggregate commit rate and the share of the least lucky one.
//  4. Growth: commit time from 4 KiB to 1 GiB of data, streamed, against
//     renameio and a directory fsync; the peak RSS of the largest commit.
//  5. Read: txn.Read of a 4 KiB pair against two os.ReadFile calls.
//
// Each latency scenario alternates ours and the baseline, one operation each,
// so that both see the same machine. The run happens in a fresh directory
// inside -dir (default: the working directory, so that the figures are those
// of its filesystem), removed at the end. Processes for the cross-process
// scenarios are copies of this program, started with a hidden -child flag.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/txnpair/txnpair/fsutil"
)

// settings are the sizes of one run: how many repetitions, how long.
type settings struct {
	name        string
	warmup      int // unrecorded operations per side before each scenario
	commitFull  int // scenario 1, repetitions per side
	commitNo    int
	lockReps    int // scenario 2
	handoffReps int
	procs       []int         // scenario 3
	warmWindow  time.Duration // committing, uncounted, before the window
	window      time.Duration
	growth      []growthSize // scenario 4
	readReps    int          // scenario 5
}

type growthSize struct {
	size int64
	reps int
}

var (
	thorough = settings{
		name: "thorough", warmup: 20,
		commitFull: 1000, commitNo: 3000,
		lockReps: 20000, handoffReps: 400,
		procs: []int{1, 2, 4, 8}, warmWindow: time.Second, window: 3 * time.Second,
		growth:   []growthSize{{4 << 10, 300}, {1 << 20, 50}, {64 << 20, 9}, {1 << 30, 9}},
		readReps: 5000,
	}
	quick = settings{
		name: "quick", warmup: 5,
		commitFull: 300, commitNo: 1000,
		lockReps: 5000, handoffReps: 150,
		procs: []int{1, 2, 4, 8}, warmWindow: 500 * time.Millisecond, window: time.Second,
		growth:   []growthSize{{4 << 10, 50}, {1 << 20, 10}, {64 << 20, 3}},
		readReps: 1000,
	}
	// smoke runs every scenario with tiny numbers, to check that the
	// program works; its figures mean nothing.
	smoke = settings{
		name: "smoke", warmup: 1,
		commitFull: 5, commitNo: 10,
		lockReps: 100, handoffReps: 5,
		procs: []int{1, 2, 4, 8}, warmWindow: 50 * time.Millisecond, window: 150 * time.Millisecond,
		growth:   []growthSize{{4 << 10, 3}, {1 << 20, 2}},
		readReps: 50,
	}
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childFlag {
		os.Exit(child(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	quickFlag := fl.Bool("quick", false, "a short run (under a minute on 2 cores): fewer repetitions, at most 64 MiB")
	smokeFlag := fl.Bool("smoke", false, "every scenario with tiny numbers, to test the program; the figures mean nothing")
	jsonFlag := fl.Bool("json", false, "print JSON instead of a markdown table")
	dirFlag := fl.String("dir", ".", "run in a fresh directory inside `dir`, removed at the end")
	onlyFlag := fl.String("only", "", "run only these scenarios, comma-separated (e.g. 1,4)")
	cpuFlag := fl.String("cpuprofile", "", "write a CPU profile of this process to `file`")
	verbose := fl.Bool("v", false, "report progress on stderr")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fl.Args())
		return 2
	}
	set := thorough
	switch {
	case *smokeFlag:
		set = smoke
	case *quickFlag:
		set = quick
	}
	only := map[int]bool{}
	if *onlyFlag != "" {
		for _, s := range strings.Split(*onlyFlag, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 || n > 5 {
				fmt.Fprintf(stderr, "bench: -only: %q is not a scenario (1 to 5)\n", s)
				return 2
			}
			only[n] = true
		}
	}

	dir, err := os.MkdirTemp(*dirFlag, "txnpair-bench-")
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	dir, _ = filepath.Abs(dir)
	defer os.RemoveAll(dir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if *cpuFlag != "" {
		f, err := os.Create(*cpuFlag)
		if err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	b := &bench{ctx: ctx, set: set, dir: dir}
	if *verbose {
		b.log = stderr
	}
	start := time.Now()
	e := machine(dir)
	e.Mode = set.name
	e.Date = start.UTC().Format("2006-01-02 15:04 UTC")
	e.LoadStart = loadAverage()

	scenarios := []func() ([]row, error){b.commitLatency, b.lockLatency, b.contention, b.growth, b.read}
	var rows []row
	for i, sc := range scenarios {
		if len(only) > 0 && !only[i+1] {
			continue
		}
		b.logf("scenario %d", i+1)
		rs, err := sc()
		if err != nil {
			fmt.Fprintf(stderr, "bench: scenario %d: %v\n", i+1, err)
			return 1
		}
		rows = append(rows, rs...)
	}
	e.LoadEnd = loadAverage()
	e.Elapsed = time.Since(start).Round(time.Second).String()

	res := result{Env: e, Rows: rows}
	if *jsonFlag {
		err = writeJSON(stdout, res)
	} else {
		err = writeTable(stdout, res)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// bench holds what the scenarios share.
type bench struct {
	ctx context.Context
	set settings
	dir string
	log io.Writer // progress, or nil
	seq int       // for fresh subdirectories
}

func (b *bench) logf(format string, args ...any) {
	if b.log != nil {
		fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
	}
}

// subdir makes a fresh directory for one side of one scenario, so that the
// sides never share a directory whose fsync one of them would pay for.
func (b *bench) subdir(name string) (string, error) {
	b.seq++
	d := filepath.Join(b.dir, fmt.Sprintf("%02d-%s", b.seq, name))
	return d, os.Mkdir(d, 0o755)
}

// alternate runs ours and base in turn, reps times each after the warm-up,
// and returns the time each call took.
func (b *bench) alternate(reps int, ours, base func() error) (samples, samples, error) {
	for range b.set.warmup {
		if err := ours(); err != nil {
			return nil, nil, fmt.Errorf("ours: %w", err)
		}
		if err := base(); err != nil {
			return nil, nil, fmt.Errorf("baseline: %w", err)
		}
	}
	so, sb := make(samples, 0, reps), make(samples, 0, reps)
	for range reps {
		if err := b.ctx.Err(); err != nil {
			return nil, nil, err
		}
		t := time.Now()
		if err := ours(); err != nil {
			return nil, nil, fmt.Errorf("ours: %w", err)
		}
		so = append(so, time.Since(t))
		t = time.Now()
		if err := base(); err != nil {
			return nil, nil, fmt.Errorf("baseline: %w", err)
		}
		sb = append(sb, time.Since(t))
	}
	return so, sb, nil
}

// machine describes this machine and the filesystem under dir.
func machine(dir string) env {
	fstype, err := fsutil.FSType(dir)
	if err != nil {
		fstype = "unknown"
	}
	return env{
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Cores: runtime.NumCPU(),
		Kernel: kernel(), CPU: cpuModel(), GoVersion: runtime.Version(),
		Dir: dir, FSType: fstype,
	}
}
