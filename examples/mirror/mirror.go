package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/txnpair/txnpair/txn"
)

// cacheKey returns conda's cache key for a subdir URL: the first 8 hex digits
// of the MD5 of the URL with a trailing slash (conda's cache_fn_url for
// repodata.json).
func cacheKey(subdirURL string) string {
	if !strings.HasSuffix(subdirURL, "/") {
		subdirURL += "/"
	}
	sum := md5.Sum([]byte(subdirURL))
	return hex.EncodeToString(sum[:])[:8]
}

// mirror holds what every subdir's fetch shares.
type mirror struct {
	client   *http.Client
	cache    string
	timeout  time.Duration
	opts     []txn.Option
	progress *progress
	stdout   io.Writer
}

// result is what happened to one subdir.
type result struct {
	subdir  string
	status  int // 200 or 304
	key     string
	size    int64
	elapsed time.Duration
	note    string
}

func (r result) String() string {
	s := fmt.Sprintf("%-9s %d  %s.json  %s  %v", r.subdir, r.status, r.key, humanBytes(r.size), r.elapsed.Round(100*time.Microsecond))
	if r.note != "" {
		s += "  (" + r.note + ")"
	}
	return s
}

// subdir mirrors one subdir's repodata.json into the cache.
func (m *mirror) subdir(ctx context.Context, channel, sub string) (result, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()

	subURL := strings.TrimSuffix(channel, "/") + "/" + sub + "/"
	key := cacheKey(subURL)
	metaPath := filepath.Join(m.cache, key+".info.json")
	dataPath := filepath.Join(m.cache, key+".json")
	res := result{subdir: sub, key: key}

	// The conditional headers come from the state as it is now, read under
	// the shared lock. The lock is not held during the request.
	var old *info
	err := txn.View(ctx, metaPath, dataPath, func(meta []byte, _ io.Reader) error {
		old = parseInfo(meta)
		return nil
	}, m.opts...)
	if err != nil {
		return res, err
	}
	fresh := old != nil && old.matchesFile(dataPath)

	url := subURL + "repodata.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return res, err
	}
	if fresh {
		if old.ETag != "" {
			req.Header.Set("If-None-Match", old.ETag)
		}
		if old.Mod != "" {
			req.Header.Set("If-Modified-Since", old.Mod)
		}
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return res, timeoutHint(err, m.timeout)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotModified && fresh:
		res.status = http.StatusNotModified
		res.size, res.note, err = m.commitNotModified(ctx, metaPath, dataPath, old)
	case resp.StatusCode == http.StatusOK:
		res.status = http.StatusOK
		res.size, err = m.commitDownload(ctx, metaPath, dataPath, url, sub, resp)
	default:
		return res, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err != nil {
		return res, timeoutHint(err, m.timeout)
	}
	res.elapsed = time.Since(start)
	return res, nil
}

// commitDownload downloads a 200 response into a private temporary file
// without holding the lock, checks that it is one JSON object, and then
// copies it into a transaction on the pair. The exclusive lock is held only
// for that local copy: conda, which gives up waiting after about 9 s, is not
// kept waiting for the network.
func (m *mirror) commitDownload(ctx context.Context, metaPath, dataPath, url, sub string, resp *http.Response) (int64, error) {
	tmp, err := os.CreateTemp("", "txnpair-mirror-*.json")
	if err != nil {
		return 0, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	body := &recordingReader{r: m.progress.reader(sub, resp.Body, resp.ContentLength)}
	verr := validateJSON(io.TeeReader(body, tmp))
	m.progress.done()
	if verr != nil {
		// Say which side failed: the network or the JSON.
		if body.err != nil && body.err != io.EOF {
			return 0, fmt.Errorf("GET %s: reading the body: %w", url, body.err)
		}
		return 0, fmt.Errorf("GET %s: %w", url, verr)
	}

	var size int64
	err = txn.Update(ctx, metaPath, dataPath, func(tx *txn.Tx) error {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(tx.Data(), tmp); err != nil {
			return err
		}
		fi, err := tx.DataInfo()
		if err != nil {
			return err
		}
		// Keep what conda records beside the HTTP headers (has_zst,
		// has_shards, fields this program does not know).
		next := newInfo(parseInfo(mustReadMeta(tx)))
		next.URL = url
		next.ETag = resp.Header.Get("ETag")
		next.Mod = resp.Header.Get("Last-Modified")
		next.CacheControl = resp.Header.Get("Cache-Control")
		next.MtimeNS = fi.ModTime().UnixNano()
		next.Size = fi.Size()
		next.RefreshNS = time.Now().UnixNano()
		size = fi.Size()
		_, err = tx.Meta().Write(next.encode())
		return err
	}, m.opts...)
	return size, err
}

// commitNotModified records a 304: a metadata-only commit with a new
// refresh_ns, and mtime_ns and size taken again from the data file.
func (m *mirror) commitNotModified(ctx context.Context, metaPath, dataPath string, sent *info) (int64, string, error) {
	var size int64
	var note string
	err := txn.Update(ctx, metaPath, dataPath, func(tx *txn.Tx) error {
		cur := parseInfo(mustReadMeta(tx))
		if cur == nil || cur.ETag != sent.ETag || cur.Mod != sent.Mod {
			// Another process committed a different download since the
			// state was read: the 304 says nothing about it.
			note = "changed by another process meanwhile; left as is"
			return nil
		}
		fi, err := tx.DataInfo()
		if err != nil {
			return err
		}
		cur.MtimeNS, cur.Size, size = fi.ModTime().UnixNano(), fi.Size(), fi.Size()
		cur.RefreshNS = time.Now().UnixNano()
		_, err = tx.Meta().Write(cur.encode())
		return err
	}, m.opts...)
	return size, note, err
}

// mustReadMeta returns the committed metadata, or nil if it cannot be read,
// which parseInfo treats as no state.
func mustReadMeta(tx *txn.Tx) []byte {
	b, err := tx.ReadMeta()
	if err != nil {
		return nil
	}
	return b
}

// recordingReader keeps the error its reader returned.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil {
		r.err = err
	}
	return n, err
}

// validateJSON reads r to the end and checks that it holds exactly one JSON
// object. It walks the top two levels token by token and checks each value
// below them whole (in repodata, one package record), so memory is bounded by
// the largest record, not by the document.
func validateJSON(r io.Reader) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("body is not a JSON object (starts with %v)", tok)
	}
	if err := validateMembers(dec, 1, true); err != nil {
		return fmt.Errorf("body is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("more than one value")
		}
		return fmt.Errorf("body has trailing data after the JSON object: %w", err)
	}
	return nil
}

// streamDepth is how many levels of objects and arrays validateJSON walks
// token by token; values nested deeper are checked whole.
const streamDepth = 2

// validateMembers checks the members of an object (or array) whose opening
// delimiter, at nesting depth depth, was just read, up to its closing one.
func validateMembers(dec *json.Decoder, depth int, object bool) error {
	for dec.More() {
		if object {
			if _, err := dec.Token(); err != nil { // the key
				return err
			}
		}
		if depth == streamDepth {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return err
			}
			continue
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if tok == json.Delim('{') || tok == json.Delim('[') {
			if err := validateMembers(dec, depth+1, tok == json.Delim('{')); err != nil {
				return err
			}
		}
	}
	_, err := dec.Token() // the closing delimiter
	return err
}

// timeoutHint says which limit expired, for errors caused by -timeout.
func timeoutHint(err error, d time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %v (raise -timeout): %w", d, err)
	}
	return err
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
