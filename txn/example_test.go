package txn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/txnpair/txnpair/txn"
)

// ExampleBegin writes a conda cache pair: the repodata in <key>.json, and in
// <key>.info.json the data file's mtime and size, which conda checks when it
// loads the pair.
func ExampleBegin() {
	dir, err := os.MkdirTemp("", "txn-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	meta := filepath.Join(dir, "497deca9.info.json")
	data := filepath.Join(dir, "497deca9.json")

	tx, err := txn.Begin(meta, data)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op once Commit has run

	// The data streams to a staged file beside 497deca9.json.
	if _, err := io.WriteString(tx.Data(), `{"packages": {}, "repodata_version": 1}`); err != nil {
		log.Fatal(err)
	}
	// DataInfo is the staged file's size and mtime, which the rename keeps.
	fi, err := tx.DataInfo()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(tx.Meta(), "{\n  \"mtime_ns\": %d,\n  \"size\": %d\n}", fi.ModTime().UnixNano(), fi.Size())
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}

	// conda's load check: the recorded mtime_ns and size are the file's.
	var state struct {
		MtimeNS int64 `json:"mtime_ns"`
		Size    int64 `json:"size"`
	}
	b, err := os.ReadFile(meta)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(b, &state); err != nil {
		log.Fatal(err)
	}
	st, err := os.Stat(data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("size:", state.Size)
	fmt.Println("conda's check passes:", state.MtimeNS == st.ModTime().UnixNano() && state.Size == st.Size())
	// Output:
	// size: 39
	// conda's check passes: true
}

// ExampleUpdate increments a counter kept in the metadata and appends a
// line to the data, as one transaction; Update rolls back if the function
// returns an error.
func ExampleUpdate() {
	dir, err := os.MkdirTemp("", "txn-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	meta, data := filepath.Join(dir, "log.meta"), filepath.Join(dir, "log")

	appendLine := func(line string) error {
		return txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
			m, err := tx.ReadMeta() // empty the first time
			if err != nil {
				return err
			}
			var n int
			if len(m) > 0 {
				if _, err := fmt.Sscanf(string(m), "lines=%d", &n); err != nil {
					return err
				}
			}
			old, err := tx.OpenData()
			if err != nil {
				return err
			}
			defer old.Close()
			w := tx.Data()
			if _, err := io.Copy(w, old); err != nil {
				return err
			}
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
			_, err = fmt.Fprintf(tx.Meta(), "lines=%d", n+1)
			return err
		})
	}
	for _, line := range []string{"first", "second"} {
		if err := appendLine(line); err != nil {
			log.Fatal(err)
		}
	}
	// An error from the function leaves the pair as it was.
	err = txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		io.WriteString(tx.Data(), "lost")
		return fmt.Errorf("changed my mind")
	})
	fmt.Println("error:", err)

	m, d, err := txn.Read(context.Background(), meta, data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n%s", m, d)
	// Output:
	// error: changed my mind
	// lines=2
	// first
	// second
}

// ExampleRead reads a pair under the shared lock: the metadata and the data
// come from the same commit, even while other processes commit.
func ExampleRead() {
	dir, err := os.MkdirTemp("", "txn-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	meta, data := filepath.Join(dir, "pair.info.json"), filepath.Join(dir, "pair.json")

	err = txn.Update(context.Background(), meta, data, func(tx *txn.Tx) error {
		io.WriteString(tx.Data(), `{"packages": {"zlib-1.3.1-0.conda": {}}}`)
		_, err := io.WriteString(tx.Meta(), `{"etag": "\"v1\""}`)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	m, d, err := txn.Read(context.Background(), meta, data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(m))
	fmt.Println(strings.Contains(string(d), "zlib"))
	// Output:
	// {"etag": "\"v1\""}
	// true
}
