// Command contend shows txnpair keeping a pair consistent under contention.
// It starts N processes (itself, re-executed) that commit to one pair for a
// few seconds, plus, when python3 is installed, one writer that follows
// conda's protocol: fcntl.lockf on byte 21 of the metadata file, rename the
// new data file into place, rewrite the metadata in place, unlock.
//
// The metadata holds a counter and the SHA-256 of the data file. Every
// writer reads the pair before it writes it, and the Go processes also read
// it with txn.Read between commits; each read checks that the metadata's
// hash is the data's and that the counter never goes back. At the end the
// counter must equal the number of commits made: no update was lost.
//
// Usage:
//
//	contend [-n 4] [-duration 3s] [-dir DIR] [-no-sync] [-python=true]
//
// It prints commits per second, the lock wait's median and 99th percentile,
// and whether every read was consistent. The exit status is 0 when it was,
// 1 when any check failed, 2 for bad usage.
//
// -unlocked-writer adds a writer that ignores the lock, to show that the
// checks catch what the lock prevents; contend then exits 1.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const (
	metaName = "pair.info.json"
	dataName = "pair.json"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	n        int
	duration time.Duration
	dir      string
	noSync   bool
	python   bool
	unlocked bool
	child    string // the writer's name, in a child
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fl := flag.NewFlagSet("contend", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.IntVar(&o.n, "n", 4, "number of Go writer processes")
	fl.DurationVar(&o.duration, "duration", 3*time.Second, "how long the writers run")
	fl.StringVar(&o.dir, "dir", "", "directory for the pair (default: a temporary directory, removed at the end)")
	fl.BoolVar(&o.noSync, "no-sync", false, "commit without fsync (txn.NoSync)")
	fl.BoolVar(&o.python, "python", true, "add a conda-protocol Python writer when python3 is installed")
	fl.BoolVar(&o.unlocked, "unlocked-writer", false, "add a writer that ignores the lock (the checks should fail)")
	fl.StringVar(&o.child, "child", "", "internal: run as the writer process with this name")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fl.NArg() > 0 || o.n < 1 || o.duration <= 0 {
		fmt.Fprintln(stderr, "contend: -n must be at least 1, -duration positive, and no arguments given")
		return exitUsage
	}
	if o.child != "" {
		return runChild(o, os.Stdin, stdout)
	}
	if err := runParent(o, stdout); err != nil {
		fmt.Fprintf(stderr, "contend: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// writerProc is one started writer.
type writerProc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *strings.Builder
}

func runParent(o options, stdout io.Writer) error {
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "contend-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	meta, data := filepath.Join(dir, metaName), filepath.Join(dir, dataName)
	if err := initPair(meta, data, o); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	childArgs := func(name string, extra ...string) []string {
		a := []string{"-child", name, "-dir", dir, "-duration", o.duration.String()}
		if o.noSync {
			a = append(a, "-no-sync")
		}
		return append(a, extra...)
	}
	var cmds []*exec.Cmd
	for i := range o.n {
		cmds = append(cmds, exec.Command(self, childArgs(fmt.Sprintf("go-%d", i+1))...))
	}
	if o.unlocked {
		cmds = append(cmds, exec.Command(self, childArgs(unlockedName)...))
	}
	withPython := false
	if o.python && runtime.GOOS != "windows" { // conda uses msvcrt.locking there
		if py, err := exec.LookPath("python3"); err == nil {
			cmds = append(cmds, exec.Command(py, "-c", pythonWriter, meta, data, o.duration.String(), fmt.Sprint(!o.noSync)))
			withPython = true
		}
	}

	// Start them all, then let them go at once.
	var procs []*writerProc
	defer func() {
		for _, p := range procs {
			p.stdin.Close()
			p.cmd.Wait()
		}
	}()
	for _, c := range cmds {
		p := &writerProc{name: filepath.Base(c.Path), cmd: c, out: new(strings.Builder)}
		if p.stdin, err = c.StdinPipe(); err != nil {
			return err
		}
		c.Stdout, c.Stderr = p.out, os.Stderr
		if err := c.Start(); err != nil {
			return err
		}
		procs = append(procs, p)
	}
	start := time.Now()
	for _, p := range procs {
		io.WriteString(p.stdin, "go\n")
		p.stdin.Close()
	}
	var reports []report
	var failures []string
	for _, p := range procs {
		err := p.cmd.Wait()
		var r report
		if jerr := json.Unmarshal([]byte(lastLine(p.out.String())), &r); jerr != nil {
			failures = append(failures, fmt.Sprintf("%s: no report (%v, %v)", p.name, err, jerr))
			continue
		}
		if err != nil && r.Writer != unlockedName {
			failures = append(failures, fmt.Sprintf("%s: %v", r.Writer, err))
		}
		reports = append(reports, r)
	}
	procs = nil
	elapsed := time.Since(start)
	return summarize(stdout, o, meta, data, reports, failures, withPython, elapsed)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// errInconsistent is returned when a check failed.
var errInconsistent = errors.New("the pair was seen inconsistent")

func summarize(w io.Writer, o options, meta, data string, reports []report, failures []string, withPython bool, elapsed time.Duration) error {
	var commits, reads int
	var waits []int64
	var bad []string
	byWriter := []string{}
	for _, r := range reports {
		commits += r.Commits
		reads += r.Reads
		waits = append(waits, r.WaitsNS...)
		for _, b := range r.Inconsistent {
			bad = append(bad, r.Writer+": "+b)
		}
		if r.Error != "" {
			failures = append(failures, r.Writer+": "+r.Error)
		}
		byWriter = append(byWriter, fmt.Sprintf("%s %d", r.Writer, r.Commits))
	}
	final, ferr := finalCheck(meta, data)
	if ferr != nil {
		bad = append(bad, "final pair: "+ferr.Error())
	} else if final != commits {
		bad = append(bad, fmt.Sprintf("final counter %d, but %d commits were made: updates were lost", final, commits))
	}

	durability := "full"
	if o.noSync {
		durability = "nosync"
	}
	py := ""
	if withPython {
		py = " + 1 conda-protocol Python writer"
	}
	if o.unlocked {
		py += " + 1 writer that ignores the lock"
	}
	fmt.Fprintf(w, "contend: %d Go writer process(es)%s, %v, durability %s\n", o.n, py, o.duration, durability)
	fmt.Fprintf(w, "  commits:   %d (%.0f/s): %s\n", commits, float64(commits)/elapsed.Seconds(), strings.Join(byWriter, ", "))
	fmt.Fprintf(w, "  lock wait: p50 %v, p99 %v, max %v (%d waits)\n",
		percentile(waits, 50), percentile(waits, 99), percentile(waits, 100), len(waits))
	fmt.Fprintf(w, "  reads:     %d checked, %d problems\n", reads, len(bad))
	if ferr == nil && final == commits {
		fmt.Fprintf(w, "  final counter %d = %d commits: no update lost\n", final, commits)
	}
	for i, b := range bad {
		if i == 10 {
			fmt.Fprintf(w, "  ... %d more\n", len(bad)-i)
			break
		}
		fmt.Fprintf(w, "  INCONSISTENT %s\n", b)
	}
	for _, f := range failures {
		fmt.Fprintf(w, "  FAILED %s\n", f)
	}
	switch {
	case len(bad) > 0:
		fmt.Fprintln(w, "consistent: NO")
		return errInconsistent
	case len(failures) > 0:
		fmt.Fprintln(w, "consistent: yes, but writers failed")
		return errors.New("writers failed")
	}
	fmt.Fprintln(w, "consistent: yes")
	return nil
}

// percentile returns the p-th percentile of ns (nearest rank).
func percentile(ns []int64, p int) time.Duration {
	if len(ns) == 0 {
		return 0
	}
	s := slices.Clone(ns)
	slices.SortFunc(s, cmp.Compare)
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return time.Duration(s[i]).Round(time.Microsecond)
}

// waitForStart blocks until the parent says go.
func waitForStart(r io.Reader) error {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || line != "go\n" {
		return fmt.Errorf("no start signal: %q %v", line, err)
	}
	return nil
}
