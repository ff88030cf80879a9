package txn

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/fsutil"
)

func sampleRecords() []*record {
	return []*record{
		{hasData: true, dataSize: 4096, hasSum: true, dataSum: 0xdeadbeef, tempID: fsutil.FileID{Dev: 64769, Ino: 9978221},
			tempName: ".497deca9.json8674665223082153551", dataBase: "497deca9.json",
			hasMeta: true, meta: []byte(`{"etag": "\"abc\"", "mtime_ns": 1700000000000000000}`)},
		{hasMeta: true, meta: []byte{}, dataBase: "k.json"},
		{hasMeta: true, meta: []byte("m"), dataBase: "k.json"},
		{intent: true},
		{hasData: true, dataSize: 1, tempID: fsutil.FileID{Dev: 1, Ino: 2},
			tempName: ".k.json12", dataBase: "k.json", hasMeta: true, meta: []byte("m")},
	}
}

func TestRecord_RoundTrips(t *testing.T) {
	for _, r := range sampleRecords() {
		got, err := decodeRecord(r.encode())
		require.NoError(t, err)
		assert.Equal(t, r, got)
	}
}

// TestRecord_EveryTornPrefixIsRejected: a record cut anywhere (a crash while
// writing it) never decodes.
func TestRecord_EveryTornPrefixIsRejected(t *testing.T) {
	for _, r := range sampleRecords() {
		b := r.encode()
		for n := range len(b) {
			_, err := decodeRecord(b[:n])
			assert.ErrorIs(t, err, errTornRecord, "prefix of %d bytes", n)
		}
		_, err := decodeRecord(append(b, 0))
		assert.ErrorIs(t, err, errTornRecord, "trailing garbage")
	}
}

// TestRecord_EveryFlippedBitIsRejected: corruption anywhere is caught.
func TestRecord_EveryFlippedBitIsRejected(t *testing.T) {
	b := sampleRecords()[0].encode()
	for i := range len(b) * 8 {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		_, err := decodeRecord(c)
		assert.ErrorIs(t, err, errTornRecord, "bit %d", i)
	}
}

// FuzzDecodeRecord: no input panics, and whatever decodes is exactly what
// encode writes for it, so a record is applied only if it is byte for byte a
// record this package wrote.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		b := r.encode()
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("TXNPAIR\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.encode(), b) {
			t.Fatalf("decoded %+v from bytes that do not re-encode to themselves", r)
		}
	})
}

// TestRecover_AnIntentLeadsToTheStagedFile: a process that crashed while
// staging left its intent and a staged file; recovery removes both and keeps
// the old pair.
func TestRecover_AnIntentLeadsToTheStagedFile(t *testing.T) {
	dir, err := os.MkdirTemp("", "txnpair-record-test-")
	require.NoError(t, err)
	t.Cleanup(func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.Remove(filepath.Join(dir, e.Name()))
		}
		os.Remove(dir)
	})
	meta, data := filepath.Join(dir, "k.info.json"), filepath.Join(dir, "k.json")
	require.NoError(t, os.WriteFile(meta, []byte("m"), 0o644))
	require.NoError(t, os.WriteFile(data, []byte("d"), 0o644))
	require.NoError(t, os.WriteFile(fsutil.RecordPath(meta), (&record{intent: true}).encode(), 0o644))
	staged := filepath.Join(dir, ".k.json8674665223082153551")
	require.NoError(t, os.WriteFile(staged, []byte("half-written"), 0o644))
	rec, err := Recover(context.Background(), meta, data)
	require.NoError(t, err)
	assert.Equal(t, []string{staged}, rec.RemovedTemps)
	assert.False(t, rec.Discarded, "an intent is not a discarded commit")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, ents, 2, "only the pair is left")
	m, d, err := Read(context.Background(), meta, data)
	require.NoError(t, err)
	assert.Equal(t, "m", string(m))
	assert.Equal(t, "d", string(d))
}
