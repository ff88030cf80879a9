//go:build !windows

package txn_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/renameio/v2"
	"github.com/txnpair/txnpair/fsutil"
	"github.com/txnpair/txnpair/txn"
)

// Benchmarks compare a pair commit with what a program would do without
// txnpair, in the same run; the benchmark names pair them up for benchstat.
//
//	go test -run '^$' -bench . -count 10 ./txn/ | tee new.txt

var (
	benchData = bytes.Repeat([]byte("0123456789abcdef"), 4096/16) // 4 KiB
	benchMeta = bytes.Repeat([]byte("m"), 300)
)

// benchDir returns a directory on the same filesystem as the package, since
// t.TempDir may be a tmpfs, where fsync costs nothing.
func benchDir(b *testing.B) string {
	b.Helper()
	d, err := os.MkdirTemp(".", "bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func benchCommit(b *testing.B, d txn.Durability) {
	dir := benchDir(b)
	meta, data := filepath.Join(dir, "k.info.json"), filepath.Join(dir, "k.json")
	b.SetBytes(int64(len(benchData) + len(benchMeta)))
	for b.Loop() {
		tx, err := txn.Begin(meta, data, txn.WithDurability(d))
		if err != nil {
			b.Fatal(err)
		}
		tx.Data().Write(benchData)
		tx.Meta().Write(benchMeta)
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommit/full is measured against BenchmarkBaseline/renameio-dirsync
// (durable, not atomic as a pair, no lock): target ≤ 1.3×.
// BenchmarkCommit/nosync against BenchmarkBaseline/write-rename: ≤ 1.5×.
func BenchmarkCommit(b *testing.B) {
	b.Run("full", func(b *testing.B) { benchCommit(b, txn.Full) })
	b.Run("nosync", func(b *testing.B) { benchCommit(b, txn.NoSync) })
	b.Run("meta-only-full", func(b *testing.B) {
		dir := benchDir(b)
		meta, data := filepath.Join(dir, "k.info.json"), filepath.Join(dir, "k.json")
		for b.Loop() {
			tx, err := txn.Begin(meta, data)
			if err != nil {
				b.Fatal(err)
			}
			tx.Meta().Write(benchMeta)
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkBaseline(b *testing.B) {
	b.Run("renameio-dirsync", func(b *testing.B) {
		dir := benchDir(b)
		meta, data := filepath.Join(dir, "k.info.json"), filepath.Join(dir, "k.json")
		b.SetBytes(int64(len(benchData) + len(benchMeta)))
		for b.Loop() {
			if err := renameio.WriteFile(data, benchData, 0o644, renameio.WithTempDir(dir)); err != nil {
				b.Fatal(err)
			}
			if err := renameio.WriteFile(meta, benchMeta, 0o644, renameio.WithTempDir(dir)); err != nil {
				b.Fatal(err)
			}
			if err := fsutil.SyncDir(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write-rename", func(b *testing.B) {
		dir := benchDir(b)
		meta, data := filepath.Join(dir, "k.info.json"), filepath.Join(dir, "k.json")
		b.SetBytes(int64(len(benchData) + len(benchMeta)))
		for b.Loop() {
			for _, f := range []struct {
				path string
				b    []byte
			}{{data, benchData}, {meta, benchMeta}} {
				if err := os.WriteFile(f.path+".tmp", f.b, 0o644); err != nil {
					b.Fatal(err)
				}
				if err := os.Rename(f.path+".tmp", f.path); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkRead is measured against BenchmarkBaselineRead (two
// os.ReadFile, no lock): target ≤ 2×.
func BenchmarkRead(b *testing.B) {
	dir := benchDir(b)
	meta, data := filepath.Join(dir, "k.info.json"), filepath.Join(dir, "k.json")
	if err := txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		tx.Data().Write(benchData)
		tx.Meta().Write(benchMeta)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.Run("txn", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := txn.Read(context.Background(), meta, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-readfile", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.ReadFile(meta); err != nil {
				b.Fatal(err)
			}
			if _, err := os.ReadFile(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
