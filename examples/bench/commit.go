//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"

	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/txn"
)

// Sizes of scenario 1: a small repodata file and its metadata.
const (
	smallData = 4 << 10
	smallMeta = 300
)

// pairPaths are the two files of a pair, in one directory.
type pairPaths struct{ dir, meta, data string }

func newPair(dir string) pairPaths {
	return pairPaths{dir: dir, meta: filepath.Join(dir, "k.info.json"), data: filepath.Join(dir, "k.json")}
}

// payload returns n bytes that do not compress, the same every run.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x7478))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// metaFor returns smallMeta bytes of conda-like metadata.
func metaFor(seq int) []byte {
	m := fmt.Appendf(nil, `{"url": "https://conda.anaconda.org/conda-forge/linux-64/repodata.json", "etag": "W/\"%08x\"", "mod": "Mon, 01 Dec 2025 00:00:00 GMT", "cache_control": "public, max-age=30", "mtime_ns": %d, "size": %d, "refresh_ns": %d`, seq, 1764547200000000000+seq, smallData, seq)
	m = append(m, bytes.Repeat([]byte(" "), max(0, smallMeta-len(m)-2))...)
	return append(m, "}\n"...)
}

// commitTxn commits data and meta to the pair with txn.
func commitTxn(p pairPaths, data io.Reader, meta []byte, d txn.Durability) error {
	tx, err := txn.Begin(p.meta, p.data, txn.WithDurability(d))
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := io.Copy(tx.Data(), data); err != nil {
		return err
	}
	if _, err := tx.Meta().Write(meta); err != nil {
		return err
	}
	return tx.Commit()
}

// commitRenameio is the durable baseline: each file written by renameio
// (a temp file in the same directory, fsync, rename), then one fsync of the
// directory. Durable, but not atomic as a pair, and no lock.
func commitRenameio(p pairPaths, data io.Reader, meta []byte) error {
	pf, err := renameio.NewPendingFile(p.data, renameio.WithTempDir(p.dir),
		renameio.WithPermissions(0o644), renameio.WithExistingPermissions())
	if err != nil {
		return err
	}
	defer pf.Cleanup()
	if _, err := io.Copy(pf, data); err != nil {
		return err
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return err
	}
	if err := renameio.WriteFile(p.meta, meta, 0o644, renameio.WithTempDir(p.dir)); err != nil {
		return err
	}
	return fsutil.SyncDir(p.dir)
}

// commitPlain is the baseline without fsyncs: each file written to a temp
// file and renamed over the target.
func commitPlain(p pairPaths, data, meta []byte) error {
	if err := writeRename(p.data, data); err != nil {
		return err
	}
	return writeRename(p.meta, meta)
}

func writeRename(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// crowd is how many other files scenario 1's last case puts beside the
// pair: a conda cache directory holds two or three files per channel subdir,
// so a user of a few dozen channels has hundreds.
const crowd = 1000

// commitLatency is scenario 1.
func (b *bench) commitLatency() ([]row, error) {
	data := payload(smallData, 1)
	var rows []row
	for _, c := range []struct {
		d        txn.Durability
		others   int // other files in the directory
		reps     int
		baseName string
		target   float64
	}{
		{txn.Full, 0, b.set.commitFull, "2× renameio + dir fsync", 1.3},
		{txn.NoSync, 0, b.set.commitNo, "2× write + rename", 1.5},
		{txn.NoSync, crowd, b.set.commitNo, "2× write + rename", 1.5},
	} {
		od, err := b.subdir("commit-txn")
		if err != nil {
			return nil, err
		}
		bd, err := b.subdir("commit-base")
		if err != nil {
			return nil, err
		}
		for _, d := range []string{od, bd} {
			if err := fill(d, c.others); err != nil {
				return nil, err
			}
		}
		ours, base := newPair(od), newPair(bd)
		seq := 0
		so, sb, err := b.alternate(c.reps, func() error {
			seq++
			return commitTxn(ours, bytes.NewReader(data), metaFor(seq), c.d)
		}, func() error {
			if c.d == txn.Full {
				return commitRenameio(base, bytes.NewReader(data), metaFor(seq))
			}
			return commitPlain(base, data, metaFor(seq))
		})
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("1. commit 4 KiB + 300 B, %s", c.d)
		if c.others > 0 {
			name += fmt.Sprintf(", %d other files in the directory", c.others)
		}
		rows = append(rows, latencyRows(name, c.baseName, so, sb, c.target)...)
		os.RemoveAll(od)
		os.RemoveAll(bd)
	}
	return rows, nil
}

// fill puts n empty files, named like a conda cache's, in dir.
func fill(dir string, n int) error {
	for i := range n {
		name := filepath.Join(dir, fmt.Sprintf("%08x.json", i))
		if err := os.WriteFile(name, nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// read is scenario 5.
func (b *bench) read() ([]row, error) {
	d, err := b.subdir("read")
	if err != nil {
		return nil, err
	}
	p := newPair(d)
	if err := commitTxn(p, bytes.NewReader(payload(smallData, 5)), metaFor(0), txn.Full); err != nil {
		return nil, err
	}
	ctx := context.Background()
	var sink int
	so, sb, err := b.alternate(b.set.readReps, func() error {
		m, d, err := txn.Read(ctx, p.meta, p.data)
		sink += len(m) + len(d)
		return err
	}, func() error {
		m, err := os.ReadFile(p.meta)
		if err != nil {
			return err
		}
		d, err := os.ReadFile(p.data)
		sink += len(m) + len(d)
		return err
	})
	if err != nil {
		return nil, err
	}
	if want := 2 * (b.set.readReps + b.set.warmup) * (smallData + smallMeta); sink != want {
		return nil, fmt.Errorf("read %d bytes in all, want %d", sink, want)
	}
	return latencyRows("5. read 4 KiB + 300 B", "2× os.ReadFile", so, sb, 2), nil
}
