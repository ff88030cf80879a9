package txn_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/txn"
)

// The small pair the fuzz target starts from.
var (
	fuzzOld = version{meta: []byte(`{"version": "old"}`), data: []byte("old data\n")}
	fuzzNew = version{meta: []byte(`{"version": "new"}`), data: []byte("new data, longer than the old\n")}
)

// What a fuzz input puts beside the pair, as bits of its which argument.
const (
	fuzzRecord  = 1 << iota // a commit record with the fuzzer's bytes
	fuzzStaged              // a staged data file with the fuzzer's bytes
	fuzzForeign             // a file that only looks like a staged file
)

// recordChecksumOK reports whether b passes the commit record's outer
// checksum, as txn/record.go documents the layout: "TXNPAIR" 0x01 first, and
// the last 32 bytes the SHA-256 of everything before them. Only such a
// record may ever be applied; the fuzzer cannot forge one, but the seeds
// hold real ones.
func recordChecksumOK(b []byte) bool {
	if len(b) < 8+sha256.Size || !bytes.HasPrefix(b, []byte("TXNPAIR\x01")) {
		return false
	}
	sum := sha256.Sum256(b[:len(b)-sha256.Size])
	return bytes.Equal(sum[:], b[len(b)-sha256.Size:])
}

// realLeftovers commits fuzzNew over fuzzOld in mode and fails the step
// after the record was made durable, so that the record and (when the data
// is replaced) the staged file stay. It returns their contents and the
// staged file's name suffix.
func realLeftovers(t testing.TB, mode string) (record, staged []byte, suffix uint64) {
	meta, data := pairIn(tempDir(t))
	writePair(t, meta, data, fuzzOld)
	failed := errors.New("stop here")
	tx, err := txn.Begin(meta, data, txn.WithStepHook(func(s txn.Step) error {
		if s == pointOfNoReturn(mode) {
			return failed
		}
		return nil
	}))
	require.NoError(t, err)
	if mode != modeData {
		tx.Meta().Write(fuzzNew.meta)
	}
	if mode != modeMeta {
		tx.Data().Write(fuzzNew.data)
	}
	require.ErrorIs(t, tx.Commit(), txn.ErrIncomplete)
	record, err = os.ReadFile(fsutil.RecordPath(meta))
	require.NoError(t, err)
	names, err := fsutil.TempNames(data)
	require.NoError(t, err)
	if len(names) == 1 {
		staged, err = os.ReadFile(names[0])
		require.NoError(t, err)
		suffix, err = strconv.ParseUint(filepath.Base(names[0])[len(filepath.Base(data))+1:], 10, 64)
		require.NoError(t, err)
	}
	return record, staged, suffix
}

// FuzzRecoveryLeftovers puts fuzzer-chosen bytes beside a valid pair as a
// commit record and/or a staged data file, then reads the pair. Read must
// not panic; unless the record passes its checksum it must return the old
// pair exactly (a torn or corrupt record is never applied); a record that
// passes may change the metadata only to bytes it carries and the data only
// to the staged bytes. Afterwards no record is left, nor, when there was a
// record, a staged file; files that are not txn's own are never touched.
func FuzzRecoveryLeftovers(f *testing.F) {
	f.Add([]byte{}, []byte{}, uint64(1), uint8(fuzzRecord|fuzzStaged))
	f.Add([]byte("TXNPAIR\x01"), []byte("x"), uint64(42), uint8(fuzzRecord|fuzzStaged|fuzzForeign))
	for _, mode := range []string{modePair, modeMeta} {
		rec, staged, suffix := realLeftovers(f, mode)
		f.Add(rec, staged, suffix, uint8(fuzzRecord|fuzzStaged))
		f.Add(rec[:len(rec)/2], staged, suffix, uint8(fuzzRecord|fuzzStaged))
		flipped := bytes.Clone(rec)
		flipped[len(flipped)/3] ^= 0x40
		f.Add(flipped, staged, suffix, uint8(fuzzRecord))
	}
	f.Fuzz(func(t *testing.T, record, staged []byte, suffix uint64, which uint8) {
		dir := tempDir(t)
		meta, data := pairIn(dir)
		writePair(t, meta, data, fuzzOld)
		var ours []string
		if which&fuzzRecord != 0 {
			require.NoError(t, os.WriteFile(fsutil.RecordPath(meta), record, 0o644))
		}
		if which&fuzzStaged != 0 {
			p := filepath.Join(dir, "."+filepath.Base(data)+strconv.FormatUint(suffix, 10))
			require.NoError(t, os.WriteFile(p, staged, 0o644))
			ours = append(ours, p)
		}
		var foreign []string
		if which&fuzzForeign != 0 {
			for _, name := range []string{"." + filepath.Base(data) + "x" + strconv.FormatUint(suffix, 10), filepath.Base(data) + ".bak"} {
				p := filepath.Join(dir, name)
				require.NoError(t, os.WriteFile(p, staged, 0o644))
				foreign = append(foreign, p)
			}
		}

		if which&fuzzRecord == 0 {
			// Without a record file txn looks for no leftovers: a
			// transaction writes its intent record before it stages.
			foreign = append(foreign, ours...)
		}

		m, d, err := txn.Read(context.Background(), meta, data)
		got := version{meta: m, data: d}
		valid := which&fuzzRecord != 0 && recordChecksumOK(record)
		if !valid {
			require.NoError(t, err, "Read with a corrupt record")
			require.True(t, got.equal(fuzzOld), "a corrupt record was applied: %v", got)
		} else {
			if errors.Is(err, txn.ErrForeignRecord) {
				return // a real record of another pair: left alone
			}
			require.NoError(t, err)
			assert.True(t, bytes.Equal(got.meta, fuzzOld.meta) || bytes.Contains(record, got.meta),
				"the metadata is neither the old one nor the record's: %q", got.meta)
			assert.True(t, bytes.Equal(got.data, fuzzOld.data) || bytes.Equal(got.data, staged),
				"the data is neither the old one nor the staged one: %q", got.data)
		}
		_, err = os.Lstat(fsutil.RecordPath(meta))
		assert.ErrorIs(t, err, os.ErrNotExist, "Read left the record")

		left := leftovers(t, meta, data)
		assert.ElementsMatch(t, foreign, left, "left beside the pair (ours were %v)", ours)
		for _, p := range foreign {
			b, err := os.ReadFile(p)
			require.NoError(t, err, "recovery removed a file that is not its own")
			assert.Equal(t, staged, b)
		}
	})
}

// TestFuzzSeedCorpusCanBeRemade makes the seed corpus of
// FuzzRecoveryLeftovers from real leftovers, checking that every kind of
// commit still leaves them. With TXNPAIR_WRITE_CORPUS=1 it rewrites the
// committed corpus under testdata/fuzz; it is how that corpus was made.
func TestFuzzSeedCorpusCanBeRemade(t *testing.T) {
	dir := tempDir(t)
	if os.Getenv("TXNPAIR_WRITE_CORPUS") == "1" {
		dir = filepath.Join("testdata", "fuzz", "FuzzRecoveryLeftovers")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	defer func() {
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, len(ents), 6, "seed entries written")
	}()
	write := func(name string, record, staged []byte, suffix uint64, which uint8) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nuint64(%d)\nbyte(%q)\n", record, staged, suffix, rune(which))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	for _, mode := range []string{modePair, modeMeta, modeData} {
		if mode == modeData {
			// A data-only commit writes no record: its staged file alone.
			write("data-staged-only", nil, fuzzNew.data, 7, fuzzStaged)
			continue
		}
		rec, staged, suffix := realLeftovers(t, mode)
		write(mode+"-real", rec, staged, suffix, fuzzRecord|fuzzStaged)
		write(mode+"-torn", rec[:len(rec)-1], staged, suffix, fuzzRecord|fuzzStaged)
		write(mode+"-header-only", rec[:8], staged, suffix, fuzzRecord)
		long := append(bytes.Clone(rec), 0)
		write(mode+"-long", long, staged, suffix, fuzzRecord|fuzzStaged|fuzzForeign)
		if len(staged) > 0 {
			write(mode+"-staged-torn", rec, staged[:len(staged)/2], suffix, fuzzRecord|fuzzStaged)
		}
	}
	write("garbage", []byte("not a record at all"), []byte("junk"), 123456789, fuzzRecord|fuzzStaged|fuzzForeign)
	write("empty", nil, nil, 0, fuzzRecord|fuzzStaged)
}
