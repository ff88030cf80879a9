// Command pairctl inspects and repairs a pair of files kept by txnpair or
// by conda: a metadata file, locked on byte 21, and its data file.
//
// Usage:
//
//	pairctl show    [-timeout D] [-data] META DATA
//	pairctl holder  META
//	pairctl verify  [-timeout D] META DATA
//	pairctl recover [-timeout D] [-no-sync] META DATA
//	pairctl write   [-timeout D] [-no-sync] [-stamp] [-meta-file F] [-data-file F] META DATA
//
// show prints the metadata and a summary of the data file (size, mtime,
// SHA-256), both read under the shared lock, so they come from one commit;
// with -data it prints the data file instead of the summary.
//
// holder says who holds byte 21 of META: the process id, the mode (shared
// or exclusive) and the command name, where the system tells (on Linux, for
// conda's lock and for txnpair's).
//
// verify runs conda's load check under the shared lock: META is a JSON
// object whose mtime_ns and size are those of DATA, and DATA is valid JSON.
//
// recover completes a commit interrupted by a crash, or discards one that
// never committed, and removes staged files left behind (txn.Recover).
//
// write replaces the pair in one transaction with the content of the files
// named by -meta-file and -data-file (either may be omitted, not both; "-"
// is standard input). With -stamp, the metadata must be a JSON object, and
// its mtime_ns and size are set to the new data file's, as conda records
// them.
//
// Flags may come before or after the paths. -timeout bounds the wait for the
// lock (default 10s, about as long as conda waits).
//
// Exit status:
//
//	0  success (holder: the byte is free)
//	1  failure: an I/O error, a bad file, a failed commit
//	2  bad usage
//	3  verify: the pair fails conda's check
//	4  the lock is held: holder found a holder, or the wait timed out
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/txnpair/txnpair/lock"
	"github.com/txnpair/txnpair/txn"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitMismatch = 3
	exitLocked   = 4
)

// defaultTimeout is how long a command waits for the lock; conda gives up
// after about 9 s.
const defaultTimeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  pairctl show    [-timeout D] [-data] META DATA
  pairctl holder  META
  pairctl verify  [-timeout D] META DATA
  pairctl recover [-timeout D] [-no-sync] META DATA
  pairctl write   [-timeout D] [-no-sync] [-stamp] [-meta-file F] [-data-file F] META DATA

exit status: 0 ok (holder: free), 1 failure, 2 usage, 3 verify mismatch, 4 lock held
`

// cmd is one invocation's state.
type cmd struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// exitError carries an exit status and a message for stderr.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func fail(code int, format string, args ...any) error {
	return &exitError{code, fmt.Errorf(format, args...)}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	c := &cmd{stdin: stdin, stdout: stdout, stderr: stderr}
	name, args := args[0], args[1:]
	fl := flag.NewFlagSet("pairctl "+name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() { fmt.Fprint(stderr, usage) }
	timeout := fl.Duration("timeout", defaultTimeout, "how long to wait for the lock")
	var err error
	switch name {
	case "show":
		showData := fl.Bool("data", false, "print the data file instead of its summary")
		err = c.withPaths(fl, args, 2, func(p []string) error { return c.show(*timeout, p[0], p[1], *showData) })
	case "holder":
		err = c.withPaths(fl, args, 1, func(p []string) error { return c.holder(p[0]) })
	case "verify":
		err = c.withPaths(fl, args, 2, func(p []string) error { return c.verify(*timeout, p[0], p[1]) })
	case "recover":
		noSync := fl.Bool("no-sync", false, "recover without fsync")
		err = c.withPaths(fl, args, 2, func(p []string) error { return c.recover(*timeout, *noSync, p[0], p[1]) })
	case "write":
		noSync := fl.Bool("no-sync", false, "commit without fsync")
		stamp := fl.Bool("stamp", false, "set mtime_ns and size in the JSON metadata to the new data file's")
		metaFile := fl.String("meta-file", "", "file holding the new metadata (- for stdin)")
		dataFile := fl.String("data-file", "", "file holding the new data (- for stdin)")
		err = c.withPaths(fl, args, 2, func(p []string) error {
			return c.write(*timeout, *noSync, *stamp, *metaFile, *dataFile, p[0], p[1])
		})
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "pairctl: unknown command %q\n%s", name, usage)
		return exitUsage
	}
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(stderr, "pairctl %s: %v\n", name, ee.err)
			if ee.code == exitUsage {
				fmt.Fprint(stderr, usage)
			}
		}
		return ee.code
	case errors.Is(err, lock.ErrLocked) || errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(stderr, "pairctl %s: %v\n", name, err)
		return exitLocked
	default:
		fmt.Fprintf(stderr, "pairctl %s: %v\n", name, err)
		return exitFailure
	}
}

// withPaths parses flags that may come before, between or after the n
// paths, then calls fn with the paths.
func (c *cmd) withPaths(fl *flag.FlagSet, args []string, n int, fn func([]string) error) error {
	var paths []string
	for {
		if err := fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return &exitError{exitOK, errors.New("")}
			}
			return &exitError{exitUsage, errors.New("")}
		}
		if fl.NArg() == 0 {
			break
		}
		paths = append(paths, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if len(paths) != n {
		return fail(exitUsage, "want %d path(s), got %d", n, len(paths))
	}
	return fn(paths)
}

func (c *cmd) show(timeout time.Duration, meta, data string, showData bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return txn.View(ctx, meta, data, func(m []byte, r io.Reader) error {
		fmt.Fprintf(c.stdout, "%s", m)
		if len(m) > 0 && m[len(m)-1] != '\n' {
			fmt.Fprintln(c.stdout)
		}
		if showData {
			_, err := io.Copy(c.stdout, r)
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "data: %s: %d bytes", data, n)
		if fi, err := os.Stat(data); err == nil {
			fmt.Fprintf(c.stdout, ", mtime_ns %d", fi.ModTime().UnixNano())
		}
		fmt.Fprintf(c.stdout, ", sha256 %x\n", h.Sum(nil))
		return nil
	})
}

func (c *cmd) holder(meta string) error {
	if _, err := os.Stat(meta); err != nil {
		return err
	}
	h, err := lock.Holder(meta)
	if err != nil {
		return err
	}
	if !h.Held {
		fmt.Fprintf(c.stdout, "%s: byte %d is not locked\n", meta, lock.DefaultOffset)
		return nil
	}
	fmt.Fprintf(c.stdout, "%s: byte %d is held by %s\n", meta, lock.DefaultOffset, h)
	return &exitError{exitLocked, errors.New("")}
}

// verify is conda's load check, under the shared lock.
func (c *cmd) verify(timeout time.Duration, meta, data string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var problems []string
	err := txn.View(ctx, meta, data, func(m []byte, r io.Reader) error {
		var state struct {
			MtimeNS *int64 `json:"mtime_ns"`
			Size    *int64 `json:"size"`
		}
		fi, err := os.Stat(data)
		if err != nil {
			return err
		}
		switch err := json.Unmarshal(m, &state); {
		case err != nil:
			problems = append(problems, fmt.Sprintf("metadata is not one JSON object (%v); conda treats it as no state", err))
		case state.MtimeNS == nil || state.Size == nil:
			problems = append(problems, "metadata has no mtime_ns or no size")
		default:
			if *state.MtimeNS != fi.ModTime().UnixNano() {
				problems = append(problems, fmt.Sprintf("mtime_ns %d in the metadata, %d on the data file", *state.MtimeNS, fi.ModTime().UnixNano()))
			}
			if *state.Size != fi.Size() {
				problems = append(problems, fmt.Sprintf("size %d in the metadata, %d on the data file", *state.Size, fi.Size()))
			}
		}
		if err := validJSON(r); err != nil {
			problems = append(problems, "data: "+err.Error())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(c.stdout, "mismatch: %s\n", p)
		}
		return fail(exitMismatch, "%s and %s fail conda's check", meta, data)
	}
	fmt.Fprintf(c.stdout, "ok: mtime_ns and size match %s, and it is valid JSON\n", data)
	return nil
}

// validJSON checks that r holds one JSON value, token by token so that
// memory does not grow with it.
func validJSON(r io.Reader) error {
	dec := json.NewDecoder(r)
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF {
				return errors.New("empty, not JSON")
			}
			return fmt.Errorf("not valid JSON: %w", err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			break
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("not valid JSON: trailing data after the value")
	}
	return nil
}

func (c *cmd) recover(timeout time.Duration, noSync bool, meta, data string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var opts []txn.Option
	if noSync {
		opts = append(opts, txn.WithDurability(txn.NoSync))
	}
	rec, err := txn.Recover(ctx, meta, data, opts...)
	if err != nil {
		return err
	}
	did := false
	if rec.RolledForward {
		fmt.Fprintln(c.stdout, "rolled forward a commit interrupted by a crash: the pair is the new one")
		did = true
	}
	if rec.Discarded {
		fmt.Fprintln(c.stdout, "discarded a commit record that never committed: the pair is the old one")
		did = true
	}
	for _, name := range rec.RemovedTemps {
		fmt.Fprintf(c.stdout, "removed staged file %s\n", name)
		did = true
	}
	if !did {
		fmt.Fprintln(c.stdout, "nothing to recover")
	}
	return nil
}

func (c *cmd) write(timeout time.Duration, noSync, stamp bool, metaFile, dataFile, meta, data string) error {
	if metaFile == "" && dataFile == "" {
		return fail(exitUsage, "give -meta-file, -data-file or both")
	}
	if metaFile == "-" && dataFile == "-" {
		return fail(exitUsage, "only one of -meta-file and -data-file can be standard input")
	}
	if stamp && metaFile == "" {
		return fail(exitUsage, "-stamp needs -meta-file")
	}
	var newMeta []byte
	if metaFile != "" {
		var err error
		if newMeta, err = c.readInput(metaFile); err != nil {
			return err
		}
	}
	var stamped map[string]json.RawMessage
	if stamp {
		if err := json.Unmarshal(newMeta, &stamped); err != nil || stamped == nil {
			return fail(exitFailure, "-stamp: %s is not a JSON object", metaFile)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	opts := []txn.Option{}
	if noSync {
		opts = append(opts, txn.WithDurability(txn.NoSync))
	}
	return txn.Update(ctx, meta, data, func(tx *txn.Tx) error {
		if dataFile != "" {
			r, err := c.openInput(dataFile)
			if err != nil {
				return err
			}
			_, err = io.Copy(tx.Data(), r)
			r.Close()
			if err != nil {
				return err
			}
		}
		if stamp {
			fi, err := tx.DataInfo()
			if err != nil {
				return err
			}
			stamped["mtime_ns"], _ = json.Marshal(fi.ModTime().UnixNano())
			stamped["size"], _ = json.Marshal(fi.Size())
			if newMeta, err = json.MarshalIndent(stamped, "", "  "); err != nil {
				return err
			}
		}
		if metaFile != "" {
			if _, err := tx.Meta().Write(newMeta); err != nil {
				return err
			}
		}
		return nil
	}, opts...)
}

func (c *cmd) openInput(name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(c.stdin), nil
	}
	return os.Open(name)
}

func (c *cmd) readInput(name string) ([]byte, error) {
	r, err := c.openInput(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
