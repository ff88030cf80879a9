package txn

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/fsutil"
)

func sampleRecords() []*record {
	return []*record{
		{hasData: true, dataSize: 4096, dataSum: 0xdeadbeef, tempID: fsutil.FileID{Dev: 64769, Ino: 9978221},
			tempName: ".497deca9.json8674665223082153551", dataBase: "497deca9.json",
			hasMeta: true, meta: []byte(`{"etag": "\"abc\"", "mtime_ns": 1700000000000000000}`)},
		{hasMeta: true, meta: []byte{}, dataBase: "k.json"},
		{hasMeta: true, meta: []byte("m"), dataBase: "k.json"},
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
