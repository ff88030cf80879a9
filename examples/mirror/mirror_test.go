package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/txnpair/txnpair/examples/internal/progtest"
)

// mirrorBin is the mirror program, built once by TestMain.
var mirrorBin string

func TestMain(m *testing.M) { progtest.Main(m, "mirror", &mirrorBin) }

// runMirror runs the built program in dir and returns its exit status and
// output.
func runMirror(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return progtest.Run(t, dir, mirrorBin, args...)
}

// condaCheck is conda's load check in Go: the .info.json parses, its mtime_ns
// and size are the .json file's, and the .json parses.
func condaCheck(t *testing.T, meta, data string) {
	t.Helper()
	mb, err := os.ReadFile(meta)
	require.NoError(t, err)
	var state struct {
		MtimeNS int64 `json:"mtime_ns"`
		Size    int64 `json:"size"`
	}
	require.NoError(t, json.Unmarshal(mb, &state), "the .info.json parses")
	fi, err := os.Stat(data)
	require.NoError(t, err)
	assert.Equal(t, fi.ModTime().UnixNano(), state.MtimeNS, "mtime_ns")
	assert.Equal(t, fi.Size(), state.Size, "size")
	db, err := os.ReadFile(data)
	require.NoError(t, err)
	assert.True(t, json.Valid(db), "the .json parses")
}

// pythonCondaCheck is conda's load check reimplemented in Python, under
// conda's lock on byte 21 of the .info.json.
const pythonCondaCheck = `
import fcntl, json, os, sys
meta, data = sys.argv[1], sys.argv[2]
with open(meta, "r+") as f:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 21)
    state = json.loads(f.read())
    st = os.stat(data)
    with open(data) as d:
        json.load(d)
    if state.get("mtime_ns") != st.st_mtime_ns or state.get("size") != st.st_size:
        print("mismatch", state.get("mtime_ns"), st.st_mtime_ns, state.get("size"), st.st_size)
        sys.exit(1)
print("ok")
`

func pythonCheck(t *testing.T, meta, data string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("python3 not found: skipping the Python reimplementation of conda's check")
		return
	}
	out, err := exec.Command(py, "-c", pythonCondaCheck, meta, data).CombinedOutput()
	assert.NoError(t, err, "%s", out)
	assert.Equal(t, "ok", strings.TrimSpace(string(out)))
}

// pairFiles returns the meta and data paths of the pair for subdirURL.
func pairFiles(cache, subdirURL string) (meta, data string) {
	key := cacheKey(subdirURL)
	return filepath.Join(cache, key+".info.json"), filepath.Join(cache, key+".json")
}

func TestCacheKeyIsConda(t *testing.T) {
	assert.Equal(t, "497deca9", cacheKey("https://conda.anaconda.org/conda-forge/linux-64/"))
	assert.Equal(t, "497deca9", cacheKey("https://conda.anaconda.org/conda-forge/linux-64"), "a slash is added")
	assert.NotEqual(t, "497deca9", cacheKey("https://conda.anaconda.org/conda-forge/noarch/"))
}

func TestNoArgumentsMirrorsSampleThen304(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runMirror(t, dir)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	round1, round2, ok := strings.Cut(out, "round 2:")
	require.True(t, ok, "a second round is shown:\n%s", out)
	assert.Equal(t, 2, strings.Count(round1, " 200 "), "round 1 downloads both subdirs:\n%s", out)
	assert.Equal(t, 2, strings.Count(round2, " 304 "), "round 2 finds both unchanged:\n%s", out)
	assert.Empty(t, errOut)

	cache := filepath.Join(dir, defaultCache)
	for _, sub := range []string{"linux-64", "noarch"} {
		meta, data := pairFiles(cache, "http://"+sampleHost+"/channel/"+sub+"/")
		condaCheck(t, meta, data)
		pythonCheck(t, meta, data)
		want, err := sampleFS.ReadFile("sample/" + sub + "/repodata.json")
		require.NoError(t, err)
		got, err := os.ReadFile(data)
		require.NoError(t, err)
		assert.Equal(t, want, got, "the mirrored %s repodata is the served one", sub)
		in := parseInfo(mustRead(t, meta))
		require.NotNil(t, in)
		assert.NotEmpty(t, in.ETag)
		assert.Equal(t, sampleCacheControl, in.CacheControl)
	}

	// A second run finds the cache fresh from the start, and records the
	// refresh.
	meta, data := pairFiles(cache, "http://"+sampleHost+"/channel/linux-64/")
	before := parseInfo(mustRead(t, meta))
	dataBefore := mustRead(t, data)
	code, out, errOut = runMirror(t, dir)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.NotContains(t, out, " 200 ", "a second run takes the 304 path")
	assert.Equal(t, 4, strings.Count(out, " 304 "))
	after := parseInfo(mustRead(t, meta))
	require.NotNil(t, after)
	assert.Greater(t, after.RefreshNS, before.RefreshNS, "a 304 updates refresh_ns")
	assert.Equal(t, before.ETag, after.ETag)
	assert.Equal(t, dataBefore, mustRead(t, data), "a 304 leaves the .json alone")
	condaCheck(t, meta, data)
	pythonCheck(t, meta, data)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// channelServer serves one subdir's repodata.json with an ETag, and
// misbehaves in the way that behave says.
type channelServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   []byte
	behave func(w http.ResponseWriter, r *http.Request) bool // true: handled
}

func (c *channelServer) set(body string, behave func(w http.ResponseWriter, r *http.Request) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.body, c.behave = []byte(body), behave
}

func newChannel(t *testing.T, body string) *channelServer {
	c := &channelServer{body: []byte(body)}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		body, behave := c.body, c.behave
		c.mu.Unlock()
		if behave != nil && behave(w, r) {
			return
		}
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, len(body)))
		http.ServeContent(w, r, "repodata.json", sampleModTime, bytes.NewReader(body))
	}))
	t.Cleanup(c.Close)
	return c
}

const goodRepodata = `{"info": {"subdir": "linux-64"}, "packages": {}, "packages.conda": {}, "repodata_version": 1}`

// TestFailuresLeaveThePairIntact mirrors once, then makes the server fail
// in each way and checks that mirror exits non-zero and leaves the pair as
// it was.
func TestFailuresLeaveThePairIntact(t *testing.T) {
	const slowTimeout = "300ms"
	cases := []struct {
		name    string
		behave  func(w http.ResponseWriter, r *http.Request) bool
		args    []string
		wantErr string
	}{
		{"server error", func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		}, nil, "500 Internal Server Error"},
		{"not found", func(w http.ResponseWriter, r *http.Request) bool {
			http.NotFound(w, r)
			return true
		}, nil, "404 Not Found"},
		{"truncated JSON", func(w http.ResponseWriter, r *http.Request) bool {
			w.Write([]byte(`{"info": {"subdir": "linux-64"}, "packages": {`))
			return true
		}, nil, "not valid JSON"},
		{"not an object", func(w http.ResponseWriter, r *http.Request) bool {
			w.Write([]byte(`[1, 2, 3]`))
			return true
		}, nil, "not a JSON object"},
		{"trailing garbage", func(w http.ResponseWriter, r *http.Request) bool {
			w.Write([]byte(goodRepodata + `{}`))
			return true
		}, nil, "trailing data"},
		{"slow body", func(w http.ResponseWriter, r *http.Request) bool {
			w.Write([]byte(`{"info": `))
			w.(http.Flusher).Flush()
			<-r.Context().Done() // until the client gives up
			return true
		}, []string{"-timeout", slowTimeout}, "timed out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := newChannel(t, goodRepodata)
			cache := t.TempDir()
			args := []string{"-channel", ch.URL, "-subdirs", "linux-64", "-cache", cache, "-no-sync"}
			code, out, errOut := runMirror(t, cache, args...)
			require.Equal(t, 0, code, "first mirror: %s %s", out, errOut)
			meta, data := pairFiles(cache, ch.URL+"/linux-64/")
			metaBefore, dataBefore := mustRead(t, meta), mustRead(t, data)

			ch.set(`{"changed": true}`, tc.behave) // a 200 would replace the pair
			code, out, errOut = runMirror(t, cache, append(args, tc.args...)...)
			assert.Equal(t, exitFailure, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			assert.Contains(t, errOut, tc.wantErr)
			assert.Contains(t, errOut, "linux-64")
			assert.Equal(t, metaBefore, mustRead(t, meta), "the .info.json is unchanged")
			assert.Equal(t, dataBefore, mustRead(t, data), "the .json is unchanged")
			condaCheck(t, meta, data)
			entries, err := os.ReadDir(cache)
			require.NoError(t, err)
			assert.Len(t, entries, 2, "no staged files or records are left")
		})
	}
}

func TestChangedRepodataIsDownloadedAgain(t *testing.T) {
	ch := newChannel(t, goodRepodata)
	cache := t.TempDir()
	args := []string{"-channel", ch.URL, "-subdirs", "linux-64", "-cache", cache, "-no-sync"}
	code, out, errOut := runMirror(t, cache, args...)
	require.Equal(t, 0, code, "%s %s", out, errOut)
	changed := `{"info": {"subdir": "linux-64"}, "packages": {"a-1-0.tar.bz2": {}}}`
	ch.set(changed, nil)
	code, out, errOut = runMirror(t, cache, args...)
	require.Equal(t, 0, code, "%s %s", out, errOut)
	assert.Contains(t, out, " 200 ")
	meta, data := pairFiles(cache, ch.URL+"/linux-64/")
	assert.Equal(t, changed, string(mustRead(t, data)))
	condaCheck(t, meta, data)
}

// TestUnparsableInfoIsNoState: conda's writer can leave the .info.json empty
// or holding two documents; mirror downloads afresh, without conditional
// headers.
func TestUnparsableInfoIsNoState(t *testing.T) {
	for name, content := range map[string]string{
		"empty":   "",
		"doubled": `{"etag": "\"x\"", "mtime_ns": 1, "size": 2}{"etag": "\"x\"", "mtime_ns": 1, "size": 2}`,
	} {
		t.Run(name, func(t *testing.T) {
			ch := newChannel(t, goodRepodata)
			var conditional atomic.Bool
			ch.set(goodRepodata, func(w http.ResponseWriter, r *http.Request) bool {
				conditional.Store(r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "")
				return false
			})
			cache := t.TempDir()
			meta, data := pairFiles(cache, ch.URL+"/linux-64/")
			require.NoError(t, os.WriteFile(meta, []byte(content), 0o644))
			require.NoError(t, os.WriteFile(data, []byte("stale"), 0o644))
			code, out, errOut := runMirror(t, cache, "-channel", ch.URL, "-subdirs", "linux-64", "-cache", cache)
			require.Equal(t, 0, code, "%s %s", out, errOut)
			assert.False(t, conditional.Load(), "no conditional headers without a state")
			assert.Contains(t, out, " 200 ")
			condaCheck(t, meta, data)
		})
	}
}

// TestMismatchedInfoIsNotTrusted: when mtime_ns and size do not match the
// .json (conda's check fails), the validators are not sent.
func TestMismatchedInfoIsNotTrusted(t *testing.T) {
	ch := newChannel(t, goodRepodata)
	cache := t.TempDir()
	args := []string{"-channel", ch.URL, "-subdirs", "linux-64", "-cache", cache, "-no-sync"}
	code, out, errOut := runMirror(t, cache, args...)
	require.Equal(t, 0, code, "%s %s", out, errOut)
	meta, data := pairFiles(cache, ch.URL+"/linux-64/")
	require.NoError(t, os.WriteFile(data, []byte(`{"tampered": 1}`), 0o644))
	code, out, errOut = runMirror(t, cache, args...)
	require.Equal(t, 0, code, "%s %s", out, errOut)
	assert.Contains(t, out, " 200 ", "a mismatched pair is downloaded again")
	assert.Equal(t, goodRepodata, string(mustRead(t, data)))
	condaCheck(t, meta, data)
}

func TestInfoKeepsUnknownFields(t *testing.T) {
	in := parseInfo([]byte(`{"url": "u", "etag": "e", "mtime_ns": 5, "size": 6,
		"has_zst": {"last_checked": "2024-03-01T12:00:00Z", "value": false}, "jlap": {"iv": "ab"}}`))
	require.NotNil(t, in)
	assert.Equal(t, "e", in.ETag)
	assert.Equal(t, int64(5), in.MtimeNS)
	out := in.encode()
	var back map[string]any
	require.NoError(t, json.Unmarshal(out, &back))
	assert.Equal(t, map[string]any{"last_checked": "2024-03-01T12:00:00Z", "value": false}, back["has_zst"])
	assert.Equal(t, map[string]any{"iv": "ab"}, back["jlap"])
	assert.True(t, strings.HasPrefix(string(out), "{\n  \"url\": \"u\",\n  \"etag\": \"e\","), "indent 2, managed fields first:\n%s", out)
	assert.Nil(t, parseInfo([]byte("")))
	assert.Nil(t, parseInfo([]byte("{}{}")))
	assert.Nil(t, parseInfo([]byte("[]")))
}

func TestBadUsageExits2(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runMirror(t, dir, "-nope")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "usage")
	code, _, _ = runMirror(t, dir, "extra")
	assert.Equal(t, exitUsage, code)
}

func TestValidateJSONChecksEveryLevel(t *testing.T) {
	valid := []string{
		goodRepodata,
		`{}`,
		` {"a": [1, {"b": [2, 3]}, "x"], "packages": {"p": {"depends": ["a", "b"], "n": {"deep": [[]]}}}} ` + "\n",
	}
	for _, s := range valid {
		assert.NoError(t, validateJSON(strings.NewReader(s)), s)
	}
	invalid := []string{
		``,
		`[]`,
		`"x"`,
		`{"packages": {"p": {"depends": [tru]}}}`,
		`{"packages": {"p": {"n": {"deep": [}}}}}`,
		`{"a": [1, 2,]}`,
		`{"a": 1`,
		`{"a": 1}}`,
		`{"a": 1} x`,
	}
	for _, s := range invalid {
		assert.Error(t, validateJSON(strings.NewReader(s)), s)
	}
}
