package txn

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"

	"github.com/txnpair/txnpair/lock"
)

// Read returns the committed content of the pair, read under the shared lock
// so that no commit runs meanwhile: both files as they were after one commit.
// If a crash left a commit pending, Read completes it first, under the
// exclusive lock. A file that does not exist reads as empty. Read creates the
// metadata file, empty, if it does not exist.
//
// Read holds the whole data file in memory; View streams it.
func Read(ctx context.Context, metaPath, dataPath string, opts ...Option) (meta, data []byte, err error) {
	err = withReadLock(ctx, metaPath, dataPath, opts, func(p pair, lk *lock.Lock) error {
		if meta, err = lk.ReadAll(); err != nil {
			return &Error{Op: "read", Path: p.meta, Err: err}
		}
		data, err = os.ReadFile(p.data)
		if errors.Is(err, fs.ErrNotExist) {
			data, err = nil, nil
		}
		if err != nil {
			return &Error{Op: "read", Path: p.data, Err: err}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return meta, data, nil
}

// View calls fn with the committed metadata and a reader of the committed
// data file, under the shared lock, which it holds until fn returns. Like
// Read, it completes a pending commit first. fn must not keep the reader.
func View(ctx context.Context, metaPath, dataPath string, fn func(meta []byte, data io.Reader) error, opts ...Option) error {
	return withReadLock(ctx, metaPath, dataPath, opts, func(p pair, lk *lock.Lock) error {
		meta, err := lk.ReadAll()
		if err != nil {
			return &Error{Op: "read", Path: p.meta, Err: err}
		}
		r, err := openData(p.data)
		if err != nil {
			return err
		}
		defer r.Close()
		return fn(meta, r)
	})
}

// withReadLock calls fn with the pair locked against commits: under the
// shared lock, or, when a commit record is pending, under the exclusive lock
// after recovery.
func withReadLock(ctx context.Context, metaPath, dataPath string, opts []Option, fn func(pair, *lock.Lock) error) error {
	cfg := newConfig(opts)
	p, err := resolvePair("read", metaPath, dataPath)
	if err != nil {
		return err
	}
	lk, err := lock.Acquire(ctx, p.meta, lock.Shared, lock.WithPerm(cfg.perm))
	if err != nil {
		return &Error{Op: "read", Path: p.meta, Err: err}
	}
	if err := p.checkSame("read"); err != nil {
		lk.Release()
		return err
	}
	if _, err := os.Lstat(p.record); err == nil || !errors.Is(err, fs.ErrNotExist) {
		// A commit is pending (or the record cannot be examined): recover
		// under the exclusive lock and read there.
		lk.Release()
		tx, err := BeginContext(ctx, metaPath, dataPath, opts...)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		return fn(tx.p, tx.lk)
	}
	defer lk.Release()
	return fn(p, lk)
}
