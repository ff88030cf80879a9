// Package txn_test is the black-box system test suite of txnpair: it drives
// the public API of txn and lock from outside, in several processes, and
// checks the contract of txn.Commit against process crashes at every step,
// power loss on real filesystems, concurrent writers (conda's protocol
// included), bad input, failing filesystems and corrupt leftovers.
//
// Multi-process tests re-run this test binary: the copy runs only
// TestMain, with the environment variable envRole naming what it is
// to do. A child reports on its standard output, one line per event, so that
// the parent learns what happened before the child was killed.
//
// The crash point is txn.WithStepHook: the hook runs before each named step
// of Commit and of recovery, and a child's hook kills its own process (or
// shuts the filesystem down) at the step under test.
package txn_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/txn"
)

// Environment of a child process.
const (
	envRole     = "TXNPAIR_TEST_ROLE"     // what the child does; empty in the parent
	envMeta     = "TXNPAIR_TEST_META"     // the metadata path
	envData     = "TXNPAIR_TEST_DATA"     // the data path
	envMode     = "TXNPAIR_TEST_MODE"     // what a commit replaces: pair, data or meta
	envDur      = "TXNPAIR_TEST_DUR"      // durability: full or nosync
	envCrashAt  = "TXNPAIR_TEST_CRASH_AT" // the step at which the child crashes
	envCrashHow = "TXNPAIR_TEST_CRASH"    // how it crashes: kill or shutdown
	envMount    = "TXNPAIR_TEST_MOUNT"    // the mount point to shut down
	envRecover  = "TXNPAIR_TEST_RECOVER"  // "1": a reader runs txn.Recover before txn.Read
)

// Pseudo-steps at which a child crashes outside Commit and recovery.
const (
	// afterCommit: Commit returned nil (the child has reported it).
	afterCommit txn.Step = "test.after-commit"
	// afterRead: Read returned (the child has reported what it read).
	afterRead txn.Step = "test.after-read"
)

// wineStartAttempts is how many times a child is started under Wine, whose
// process creation fails now and then, before the test fails.
const wineStartAttempts = 3

// childTimeout bounds one child process; a child that hangs this long has
// deadlocked.
const childTimeout = 2 * time.Minute

// Kinds of commit: what a transaction replaces.
const (
	modePair = "pair" // metadata and data
	modeData = "data" // data only
	modeMeta = "meta" // metadata only
)

var modes = []string{modePair, modeData, modeMeta}

var durabilities = map[string]txn.Durability{"full": txn.Full, "nosync": txn.NoSync}

// A version of the pair's content: old is the pair before the commit under
// test, new the pair it writes.
type version struct{ meta, data []byte }

// dataSize is the size of test data files: several pages and more than
// txn's write buffer, so that a torn data file is possible and visible.
const dataSize = 200 << 10

func makeVersion(name string) version {
	data := make([]byte, dataSize)
	for i := range data {
		data[i] = name[i%len(name)] ^ byte(i/len(name))
	}
	sum := sha256.Sum256(data)
	meta := fmt.Sprintf("{\n  \"version\": %q,\n  \"sha256\": %q\n}\n", name, hex.EncodeToString(sum[:]))
	return version{meta: []byte(meta), data: data}
}

var (
	oldPair = makeVersion("old")
	newPair = makeVersion("new")
)

// expected returns what the pair is after a commit of kind mode of newPair
// over oldPair.
func (v version) after(mode string, from version) version {
	switch mode {
	case modeData:
		return version{meta: from.meta, data: v.data}
	case modeMeta:
		return version{meta: v.meta, data: from.data}
	}
	return v
}

func (v version) String() string {
	d := sha256.Sum256(v.data)
	return fmt.Sprintf("meta %q, data sha256 %x (%d bytes)", firstLine(v.meta), d[:6], len(v.data))
}

func firstLine(b []byte) string {
	s := strings.ReplaceAll(string(b), "\n", " ")
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

func (v version) equal(w version) bool {
	return bytes.Equal(v.meta, w.meta) && bytes.Equal(v.data, w.data)
}

// tempDir is t.TempDir, except that its clean-up removes the tree entry by
// entry with os.Remove: under Wine 8.0 os.RemoveAll fails (Wine does not
// implement FileDispositionInformationEx), and this suite runs there too.
// As with t.TempDir, the directory's parent is the test's own, so a test may
// put files beside the directory or remove it.
func tempDir(t testing.TB) string {
	t.Helper()
	base, err := os.MkdirTemp("", "txnpair-txn_test-")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, removeTree(base)) })
	dir := filepath.Join(base, "d")
	require.NoError(t, os.Mkdir(dir, 0o777))
	return dir
}

// removeTree removes dir and everything below it with os.Remove, children
// first. It is os.RemoveAll for systems where that fails (Wine); a missing
// dir is not an error.
func removeTree(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) && len(paths) == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	slices.Reverse(paths) // children after their parent in walk order
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// pairIn returns the metadata and data paths of the pair in dir, named as
// conda names its cache files.
func pairIn(dir string) (meta, data string) {
	return filepath.Join(dir, "497deca9.info.json"), filepath.Join(dir, "497deca9.json")
}

// writePair puts v in place with plain writes, as a starting state.
func writePair(t testing.TB, meta, data string, v version) {
	t.Helper()
	require.NoError(t, os.WriteFile(meta, v.meta, 0o644))
	require.NoError(t, os.WriteFile(data, v.data, 0o644))
}

// readPair reads the pair with txn.Read.
func readPair(t testing.TB, meta, data string, opts ...txn.Option) version {
	t.Helper()
	m, d, err := txn.Read(context.Background(), meta, data, opts...)
	require.NoError(t, err, "txn.Read")
	return version{meta: m, data: d}
}

// leftovers lists the files in the pair's directories that are neither the
// metadata nor the data file: staged data files, commit records, anything.
func leftovers(t testing.TB, meta, data string) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	for _, dir := range []string{filepath.Dir(meta), filepath.Dir(data)} {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if p != meta && p != data && e.Name() != "lost+found" {
				out = append(out, p)
			}
		}
	}
	return out
}

// assertClean checks that nothing but the pair is left beside it after a
// Read, and that txn.Recover then finds nothing to do.
func assertClean(t testing.TB, meta, data string) {
	t.Helper()
	assert.Empty(t, leftovers(t, meta, data), "files left beside the pair after Read")
	rec, err := txn.Recover(context.Background(), meta, data)
	require.NoError(t, err, "txn.Recover")
	assert.Equal(t, txn.Recovery{}, rec, "Recover found work that Read left")
	assert.Empty(t, leftovers(t, meta, data), "files left beside the pair after Recover")
}

// isOurLeftover reports whether the base name is a file that txn leaves
// beside the pair while a transaction runs.
func isOurLeftover(name, meta, data string) bool {
	return fsutil.IsTempName(name, filepath.Base(data)) || name == filepath.Base(fsutil.RecordPath(meta))
}

// child is a re-run of this test binary in a role.
type child struct {
	env    []string
	stdout bytes.Buffer
	stderr bytes.Buffer
	err    error // from Wait
}

// runChild runs the test binary as a child in role with extra environment
// variables (KEY=value) and waits for it. It fails the test if the child does
// not end within childTimeout.
func runChild(t testing.TB, role string, env ...string) *child {
	t.Helper()
	return runChildBin(t, os.Args[0], role, env...)
}

// runChildBin is runChild with another build of this test binary.
func runChildBin(t testing.TB, bin, role string, env ...string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	c := &child{env: append([]string{envRole + "=" + role}, env...)}
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
		cmd.Env = append(childEnviron(), c.env...)
		cmd.Stdout, cmd.Stderr = &c.stdout, &c.stderr
		err := cmd.Start()
		if err != nil && underWine() && attempt < wineStartAttempts {
			// Wine's CreateProcess fails now and then ("Internal
			// error"); Windows' does not.
			t.Logf("Wine: starting a child failed, retrying: %v", err)
			continue
		}
		require.NoError(t, err, "starting a child")
		c.err = cmd.Wait()
		break
	}
	require.NoError(t, ctx.Err(), "child %v did not end within %v (deadlock?); stderr:\n%s", c.env, childTimeout, c.stderr.String())
	return c
}

// childEnviron returns this process's environment for a child. A binary
// built with -race sleeps a second at exit to let its reports out
// (GORACE's atexit_sleep_ms); children report through pipes that are read to
// the end, so they skip the sleep.
func childEnviron() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// events returns the child's report lines.
func (c *child) events() []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(c.stdout.Bytes()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// has reports whether the child reported the event.
func (c *child) has(event string) bool { return slices.Contains(c.events(), event) }

// value returns the rest of the first report line that starts with prefix
// and a space.
func (c *child) value(prefix string) (string, bool) {
	for _, e := range c.events() {
		if v, ok := strings.CutPrefix(e, prefix+" "); ok {
			return v, true
		}
	}
	return "", false
}

func (c *child) String() string {
	return fmt.Sprintf("child %v: %v\nstdout:\n%s\nstderr:\n%s", c.env, c.err, c.stdout.String(), c.stderr.String())
}

// TestMain runs the body of a child process when a test started this binary
// as one (envRole names its role), and the tests otherwise.
func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		code := 0
		if err := childMain(role); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			code = 3
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func childMain(role string) error {
	switch role {
	case "commit":
		return childCommit()
	case "read":
		return childRead()
	case "stress":
		return childStress()
	case "badinput":
		return childBadInput()
	}
	return fmt.Errorf("unknown role %q", role)
}

// report writes one event line to the parent. Standard output is unbuffered,
// so the line is out before a crash that follows.
func report(format string, args ...any) {
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// crashOpts returns the options of a child that crashes at the step named
// in its environment, reporting "crash <step>" first. It also reports every
// step it passes as "step <step>".
func crashOpts() ([]txn.Option, func(txn.Step)) {
	at := txn.Step(os.Getenv(envCrashAt))
	crash := func(s txn.Step) {
		report("crash %s", s)
		crashNow()
	}
	hook := func(s txn.Step) error {
		report("step %s", s)
		if s == at {
			crash(s)
		}
		return nil
	}
	opts := []txn.Option{txn.WithStepHook(hook)}
	if d, ok := durabilities[os.Getenv(envDur)]; ok {
		opts = append(opts, txn.WithDurability(d))
	}
	maybe := func(s txn.Step) {
		if s == at {
			crash(s)
		}
	}
	return opts, maybe
}

// crashNow ends the process as a crash would: SIGKILL (TerminateProcess on
// Windows), or, with envCrashHow=shutdown, a filesystem shutdown that drops
// everything not yet durable, as a power loss does, followed by an exit.
func crashNow() {
	if os.Getenv(envCrashHow) == "shutdown" {
		if err := shutdownFS(os.Getenv(envMount)); err != nil {
			report("shutdown-failed %v", err)
			os.Exit(4)
		}
		os.Exit(0)
	}
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		p.Kill()
	}
	select {} // the kill is on its way
}

// childCommit commits newPair over the pair in the mode named by envMode.
func childCommit() error {
	meta, data := os.Getenv(envMeta), os.Getenv(envData)
	opts, maybeCrash := crashOpts()
	tx, err := txn.Begin(meta, data, opts...)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	mode := os.Getenv(envMode)
	if mode != modeData {
		if _, err := tx.Meta().Write(newPair.meta); err != nil {
			return err
		}
	}
	if mode != modeMeta {
		if _, err := tx.Data().Write(newPair.data); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		report("commit-error %v", err)
		return err
	}
	report("committed")
	maybeCrash(afterCommit)
	return nil
}

// childRead reads the pair, recovering it (with txn.Recover first when
// envRecover is 1), and reports what it read as
// "read <digest>".
func childRead() error {
	meta, data := os.Getenv(envMeta), os.Getenv(envData)
	opts, maybeCrash := crashOpts()
	if os.Getenv(envRecover) == "1" {
		if _, err := txn.Recover(context.Background(), meta, data, opts...); err != nil {
			return err
		}
	}
	m, d, err := txn.Read(context.Background(), meta, data, opts...)
	if err != nil {
		return err
	}
	report("read %s", digest(version{meta: m, data: d}))
	maybeCrash(afterRead)
	return nil
}

// digest names a version compactly for reports.
func digest(v version) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:", len(v.meta))
	h.Write(v.meta)
	h.Write(v.data)
	return hex.EncodeToString(h.Sum(nil))
}
