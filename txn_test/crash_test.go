package txn_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/txn"
)

// commitSteps returns the steps a commit of kind mode passes under Full
// durability, in order.
func commitSteps(mode string) []txn.Step { return commitStepsFor(mode, "full") }

// commitStepsFor returns the steps a commit of kind mode passes under the
// durability named dname, in order: NoSync syncs nothing, so a pair commit
// skips commit.sync-data.
func commitStepsFor(mode, dname string) []txn.Step {
	switch mode {
	case modeData:
		// No commit record, but the intent record written before staging
		// is removed at the end.
		return []txn.Step{txn.StepRenameData, txn.StepSyncApplied, txn.StepRemoveRecord, txn.StepRelease}
	case modeMeta:
		return []txn.Step{txn.StepWriteRecord, txn.StepSyncRecord, txn.StepWriteMeta,
			txn.StepSyncApplied, txn.StepRemoveRecord, txn.StepRelease}
	}
	steps := []txn.Step{txn.StepSyncData, txn.StepWriteRecord, txn.StepSyncRecord, txn.StepRenameData,
		txn.StepWriteMeta, txn.StepSyncApplied, txn.StepRemoveRecord, txn.StepRelease}
	if dname == "nosync" {
		steps = steps[1:]
	}
	return steps
}

// recoverySteps returns the steps of recovery: those txn.Steps lists after
// the last step of Commit.
func recoverySteps() []txn.Step {
	all := txn.Steps()
	i := slices.Index(all, txn.StepRelease)
	return all[i+1:]
}

// pointOfNoReturn returns the first step of a commit of kind mode at which a
// crash must leave the new pair: the record is durable (or, for a data-only
// commit, the rename is done).
func pointOfNoReturn(mode string) txn.Step {
	switch mode {
	case modeData:
		return txn.StepSyncApplied
	case modeMeta:
		return txn.StepWriteMeta
	}
	return txn.StepRenameData
}

// mustBeNew reports whether a crash at step s of a commit of kind mode must
// leave the new pair.
func mustBeNew(mode string, s txn.Step) bool {
	steps := commitSteps(mode)
	i := slices.Index(steps, s)
	return i < 0 || i >= slices.Index(steps, pointOfNoReturn(mode))
}

// mustBeOld reports whether a crash at step s of a commit of kind mode must
// leave the old pair: nothing has been written but the staged data.
func mustBeOld(mode string, s txn.Step) bool {
	return s == commitSteps(mode)[0] || s == txn.StepWriteRecord
}

func TestCommitPassesEveryStepInOrder(t *testing.T) {
	for dname, dur := range durabilities {
		for _, mode := range modes {
			t.Run(dname+"/"+mode, func(t *testing.T) {
				meta, data := pairIn(tempDir(t))
				writePair(t, meta, data, oldPair)
				var seen []txn.Step
				hook := txn.WithStepHook(func(s txn.Step) error { seen = append(seen, s); return nil })
				tx, err := txn.Begin(meta, data, hook, txn.WithDurability(dur))
				require.NoError(t, err)
				defer tx.Rollback()
				if mode != modeData {
					tx.Meta().Write(newPair.meta)
				}
				if mode != modeMeta {
					tx.Data().Write(newPair.data)
				}
				require.NoError(t, tx.Commit())
				assert.Equal(t, commitStepsFor(mode, dname), seen)
				assert.True(t, readPair(t, meta, data).equal(newPair.after(mode, oldPair)))
			})
		}
	}
}

// TestCrashAtAnyStepLeavesOldOrNewPair kills a committing process at every
// step of Commit, for commits of both files, of the data alone and of the
// metadata alone, and then a recovering process at every step of recovery,
// and once more right after recovery. Each time, Read must return exactly
// the old or exactly the new pair (the new one once the commit passed its
// point of no return), and no staged or record file may remain.
func TestCrashAtAnyStepLeavesOldOrNewPair(t *testing.T) {
	killedAt := map[txn.Step]bool{}
	dnames, cmodes, ops := []string{"full", "nosync"}, modes, []string{"read", "recover"}
	if raceEnabled {
		// Every child is a race-instrumented binary, several times
		// slower to start: cover every step once, with commits of both
		// files, and leave the full matrix to the normal run.
		t.Log("-race: full durability, pair commits and recovery by Read only")
		dnames, cmodes, ops = dnames[:1], []string{modePair}, ops[:1]
	}
	t.Run("commit", func(t *testing.T) {
		for _, dname := range dnames {
			for _, mode := range cmodes {
				for _, step := range txn.Steps() {
					t.Run(dname+"/"+mode+"/"+string(step), func(t *testing.T) {
						if crashCommitAt(t, dname, mode, step) {
							killedAt[step] = true
						}
					})
				}
			}
		}
	})
	t.Run("recovery", func(t *testing.T) {
		for _, dname := range dnames {
			for _, st := range leftoverStates() {
				if !slices.Contains(cmodes, st.mode) || !slices.Contains(commitStepsFor(st.mode, dname), st.step) {
					continue
				}
				for _, op := range ops {
					t.Run(dname+"/"+st.name+"/"+op, func(t *testing.T) {
						for _, s := range crashRecovery(t, dname, st, op) {
							killedAt[s] = true
						}
					})
				}
			}
		}
	})
	for _, s := range txn.Steps() {
		assert.True(t, killedAt[s], "no child was killed at step %s", s)
	}
}

// crashCommitAt runs a child that commits newPair over oldPair in mode and
// kills itself at step, then checks the pair. It reports whether the child
// was killed (the commit passes step).
func crashCommitAt(t *testing.T, dname, mode string, step txn.Step) bool {
	meta, data := pairIn(tempDir(t))
	writePair(t, meta, data, oldPair)
	c := runChild(t, "commit", envMeta+"="+meta, envData+"="+data, envMode+"="+mode,
		envDur+"="+dname, envCrashAt+"="+string(step))
	reached := slices.Contains(commitStepsFor(mode, dname), step)
	if reached {
		require.True(t, c.has("crash "+string(step)) && c.err != nil, "the child was not killed at %s: %v", step, c)
	} else {
		require.True(t, c.has("committed") && c.err == nil, "a commit that does not pass %s failed: %v", step, c)
	}
	want := newPair.after(mode, oldPair)
	got := readPair(t, meta, data, txn.WithDurability(durabilities[dname]))
	switch {
	case !reached || mustBeNew(mode, step):
		assert.True(t, got.equal(want), "crash at %s after the point of no return: want the new pair (%v), got %v", step, want, got)
	case mustBeOld(mode, step):
		assert.True(t, got.equal(oldPair), "crash at %s before anything was written: want the old pair, got %v", step, got)
	default:
		assert.True(t, got.equal(want) || got.equal(oldPair), "crash at %s: want the old or the new pair, got %v", step, got)
	}
	assertClean(t, meta, data)
	again := readPair(t, meta, data)
	assert.True(t, again.equal(got), "a second Read disagrees with the first: %v then %v", got, again)
	return reached
}

// A leftoverState is what a crashed commit leaves, built by killing a child
// at a commit step and then, optionally, damaging what it left as a power
// loss could (a torn record, a torn staged file).
type leftoverState struct {
	name    string
	mode    string
	step    txn.Step
	damage  func(t *testing.T, meta, data string)
	mustNew bool // recovery must roll forward
	mustOld bool // recovery must discard
}

func leftoverStates() []leftoverState {
	var out []leftoverState
	for _, mode := range modes {
		for _, s := range commitSteps(mode) {
			out = append(out, leftoverState{name: mode + "/" + string(s), mode: mode, step: s,
				mustNew: mustBeNew(mode, s), mustOld: mustBeOld(mode, s)})
		}
	}
	// A record the kill left complete but a power loss would have torn, and
	// a staged file cut short: both say the commit never happened.
	for _, mode := range []string{modePair, modeMeta} {
		out = append(out, leftoverState{name: mode + "/torn-record", mode: mode, step: txn.StepSyncRecord,
			damage: tearRecord, mustOld: true})
	}
	out = append(out, leftoverState{name: "pair/torn-staged", mode: modePair, step: txn.StepSyncRecord,
		damage: tearStaged, mustOld: true})
	return out
}

func tearRecord(t *testing.T, meta, data string) {
	rec := fsutil.RecordPath(meta)
	fi, err := os.Stat(rec)
	require.NoError(t, err, "the crashed commit left no record")
	require.NoError(t, os.Truncate(rec, fi.Size()/2))
}

func tearStaged(t *testing.T, meta, data string) {
	names, err := fsutil.TempNames(data)
	require.NoError(t, err)
	require.Len(t, names, 1, "the crashed commit left no staged file")
	require.NoError(t, os.Truncate(names[0], dataSize/2))
}

// crashRecovery builds the leftover state st, learns what an uninterrupted
// recovery does with it, then for each recovery step that recovery passes
// rebuilds the state and kills a reader there, kills the next reader right
// after its Read returned, and checks that the pair is what the
// uninterrupted recovery found. It returns the steps at which a child was
// killed.
func crashRecovery(t *testing.T, dname string, st leftoverState, op string) []txn.Step {
	build := func(t *testing.T) (meta, data string) {
		meta, data = pairIn(tempDir(t))
		writePair(t, meta, data, oldPair)
		c := runChild(t, "commit", envMeta+"="+meta, envData+"="+data, envMode+"="+st.mode,
			envDur+"="+dname, envCrashAt+"="+string(st.step))
		require.True(t, c.has("crash "+string(st.step)), "the commit was not killed at %s: %v", st.step, c)
		if st.damage != nil {
			st.damage(t, meta, data)
		}
		return meta, data
	}
	read := func(t *testing.T, meta, data string, at txn.Step) *child {
		rec := "0"
		if op == "recover" {
			rec = "1"
		}
		return runChild(t, "read", envMeta+"="+meta, envData+"="+data, envDur+"="+dname,
			envCrashAt+"="+string(at), envRecover+"="+rec)
	}

	// The uninterrupted recovery.
	meta, data := build(t)
	before := leftovers(t, meta, data)
	ref := read(t, meta, data, "")
	require.NoError(t, ref.err, "%v", ref)
	want, ok := ref.value("read")
	require.True(t, ok, "%v", ref)
	newer := newPair.after(st.mode, oldPair)
	switch {
	case st.mustNew:
		require.Equal(t, digest(newer), want, "recovery after a crash at %s must give the new pair", st.step)
	case st.mustOld:
		require.Equal(t, digest(oldPair), want, "recovery after a crash at %s must give the old pair", st.step)
	default:
		require.Contains(t, []string{digest(oldPair), digest(newer)}, want, "recovery gave neither the old nor the new pair")
	}
	assertClean(t, meta, data)
	var passed []txn.Step
	for _, e := range ref.events() {
		if s, ok := stepEvent(e); ok && slices.Contains(recoverySteps(), s) {
			passed = append(passed, s)
		}
	}
	switch {
	case len(before) == 0:
		assert.Empty(t, passed, "recovery did something where nothing was left")
	case op == "recover":
		assert.NotEmpty(t, passed, "recovery did nothing with %v", before)
	}

	var killed []txn.Step
	for _, r := range passed {
		t.Run(string(r), func(t *testing.T) {
			meta, data := build(t)
			c := read(t, meta, data, r)
			require.True(t, c.has("crash "+string(r)) && c.err != nil, "the reader was not killed at %s: %v", r, c)
			killed = append(killed, r)

			// Recover again, and crash right after.
			c = read(t, meta, data, afterRead)
			require.True(t, c.has("crash "+string(afterRead)), "%v", c)
			got, _ := c.value("read")
			assert.Equal(t, want, got, "recovery interrupted at %s changed its outcome", r)

			final := readPair(t, meta, data, txn.WithDurability(durabilities[dname]))
			assert.Equal(t, want, digest(final), "the pair changed after the reader that recovered it crashed")
			assertClean(t, meta, data)
		})
	}
	return killed
}

func stepEvent(e string) (txn.Step, bool) {
	if rest, ok := strings.CutPrefix(e, "step "); ok {
		return txn.Step(rest), true
	}
	return "", false
}
