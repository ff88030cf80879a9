package txn

// The commit record.
//
// It is written beside the metadata file, made durable before any target
// changes, and removed once the new pair is in place. It holds everything
// recovery needs to roll the commit forward without the process that wrote
// it: the new metadata, and the name, size and identity of the staged data
// file. The identity (device and inode) lets recovery tell "the staged file
// was already renamed over the data file" from "the staged file was lost".
// Under Full the staged file is synced before the record is written, so a
// durable record has durable data behind it. Under NoSync nothing is synced,
// and a power loss can leave a record beside staged data the disk never got;
// the record then carries the data's CRC-32C, and recovery that finds it
// wrong keeps the old pair.
//
// Layout, little-endian:
//
//	magic   [8]byte  "TXNPAIR" 0x01
//	flags   uint32   1: replaces data, 2: replaces metadata, 4: intent only,
//	                 8: crc holds the data's checksum
//	size    uint64   the staged data file's size
//	crc     uint32   its CRC-32C (Castagnoli), with flag 8; else 0
//	dev     uint64   the staged data file's device
//	ino     uint64   the staged data file's inode
//	nlen    uint16   then the staged file's base name
//	dlen    uint16   then the data file's base name
//	mlen    uint64   then the new metadata
//	sum     [32]byte SHA-256 of everything before it
//
// A record that is short, long, or fails its checksum is torn: it was never
// made durable, so the commit never happened.
//
// Before a transaction creates its staged data file it writes an intent: a
// record with only the intent flag, never synced. Since the staged file is
// created after the intent and the record is removed only after the staged
// file is gone, "no record" means "no leftovers", and Begin looks for staged
// files (a directory scan) only when a record exists.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"path/filepath"
	"strings"

	"github.com/txnpair/txnpair/fsutil"
)

var recordMagic = [8]byte{'T', 'X', 'N', 'P', 'A', 'I', 'R', 1}

const (
	flagData   = 1 << 0
	flagMeta   = 1 << 1
	flagIntent = 1 << 2
	flagSum    = 1 << 3

	recordFixed = 8 + 4 + 8 + 4 + 8 + 8 + 2 + 2 + 8 + sha256.Size
)

var errTornRecord = errors.New("torn or corrupt commit record")

// record is a decoded commit record.
type record struct {
	intent   bool // a transaction is staging data; nothing is committed
	hasData  bool
	dataSize int64
	hasSum   bool   // dataSum is set
	dataSum  uint32 // CRC-32C of the staged data
	tempID   fsutil.FileID
	tempName string // base name of the staged data file
	dataBase string // base name of the data file
	hasMeta  bool
	meta     []byte // the new metadata, when hasMeta
}

func (r *record) encode() []byte {
	n := recordFixed + len(r.tempName) + len(r.dataBase) + len(r.meta)
	b := make([]byte, 0, n)
	b = append(b, recordMagic[:]...)
	var flags uint32
	if r.intent {
		flags |= flagIntent
	}
	if r.hasData {
		flags |= flagData
	}
	if r.hasMeta {
		flags |= flagMeta
	}
	if r.hasSum {
		flags |= flagSum
	}
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.dataSize))
	b = binary.LittleEndian.AppendUint32(b, r.dataSum)
	b = binary.LittleEndian.AppendUint64(b, r.tempID.Dev)
	b = binary.LittleEndian.AppendUint64(b, r.tempID.Ino)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.tempName)))
	b = append(b, r.tempName...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.dataBase)))
	b = append(b, r.dataBase...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(r.meta)))
	b = append(b, r.meta...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// decodeRecord parses b, returning errTornRecord for anything that is not
// exactly a record encode produced.
func decodeRecord(b []byte) (*record, error) {
	if len(b) < recordFixed || !bytes.Equal(b[:8], recordMagic[:]) {
		return nil, errTornRecord
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return nil, errTornRecord
	}
	d := decoder{b: body[8:]}
	flags := d.u32()
	r := &record{intent: flags&flagIntent != 0, hasData: flags&flagData != 0,
		hasMeta: flags&flagMeta != 0, hasSum: flags&flagSum != 0}
	r.dataSize = int64(d.u64())
	r.dataSum = d.u32()
	r.tempID.Dev = d.u64()
	r.tempID.Ino = d.u64()
	r.tempName = string(d.bytes(uint64(d.u16())))
	r.dataBase = string(d.bytes(uint64(d.u16())))
	meta := d.bytes(d.u64())
	if r.hasMeta {
		r.meta = append([]byte{}, meta...)
	}
	switch {
	case d.bad || len(d.b) != 0 || flags&^(flagData|flagMeta|flagIntent|flagSum) != 0 || flags == 0:
		return nil, errTornRecord
	case r.intent:
		if flags != flagIntent || r.dataSize != 0 || r.dataSum != 0 || r.tempID != (fsutil.FileID{}) ||
			r.tempName != "" || r.dataBase != "" || len(meta) != 0 {
			return nil, errTornRecord
		}
		return r, nil
	case r.dataSize < 0 || !baseName(r.dataBase):
		return nil, errTornRecord
	case r.hasData != (r.tempName != ""):
		return nil, errTornRecord
	case r.hasData && (!baseName(r.tempName) || !fsutil.IsTempName(r.tempName, r.dataBase)):
		return nil, errTornRecord
	case !r.hasData && (r.dataSize != 0 || r.hasSum || r.tempID != fsutil.FileID{}):
		return nil, errTornRecord
	case !r.hasSum && r.dataSum != 0:
		return nil, errTornRecord
	case !r.hasMeta && len(meta) != 0:
		return nil, errTornRecord
	}
	return r, nil
}

// baseName reports whether s is a plain file name, with no directory part.
func baseName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`+"\x00") && filepath.Base(s) == s
}

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) bytes(n uint64) []byte {
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum returns the CRC-32C of what r yields.
func checksum(r io.Reader) (uint32, error) {
	h := crc32.New(castagnoli)
	_, err := io.Copy(h, r)
	return h.Sum32(), err
}
