package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path"
	"time"
)

// sampleFS holds the sample channel: <subdir>/repodata.json for linux-64 and
// noarch, a handful of real package names with made-up hashes.
//
//go:embed sample
var sampleFS embed.FS

// sampleModTime is the Last-Modified of the sample channel's files.
var sampleModTime = time.Date(2024, time.March, 1, 12, 0, 0, 0, time.UTC)

// sampleCacheControl is what anaconda.org sends for repodata.json.
const sampleCacheControl = "public, max-age=1200"

// sampleHost is the host name of the sample channel. It is in the reserved
// .invalid domain, so it never resolves: the client dials the loopback
// server instead. A fixed name keeps the cache keys, which hash the URL,
// the same from run to run, whatever port the server got.
const sampleHost = "sample.invalid"

// sampleServer is the sample channel served on a loopback port.
type sampleServer struct {
	URL  string // http://sample.invalid/channel
	Addr string // the loopback address it really listens on
	srv  *http.Server
}

// serveSample serves the sample channel on 127.0.0.1 at a free port. It
// answers conditional requests as a channel server does: 304 when the
// If-None-Match ETag (or, without one, If-Modified-Since) matches.
func serveSample() (*sampleServer, error) {
	root, err := fs.Sub(sampleFS, "sample")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: sampleHandler(root), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &sampleServer{URL: "http://" + sampleHost + "/channel", Addr: ln.Addr().String(), srv: srv}, nil
}

// client returns an HTTP client that reaches sampleHost at the server's
// loopback address, and nothing else.
func (s *sampleServer) client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != sampleHost+":80" {
			return nil, fmt.Errorf("the sample client only reaches %s, not %s", sampleHost, addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}
	return &http.Client{Transport: t}
}

func (s *sampleServer) Close() error { return s.srv.Close() }

func sampleHandler(root fs.FS) http.Handler {
	return http.StripPrefix("/channel/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := path.Clean(r.URL.Path)
		b, err := fs.ReadFile(root, name)
		if err != nil || path.Base(name) != "repodata.json" {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(b)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
		w.Header().Set("Cache-Control", sampleCacheControl)
		w.Header().Set("Content-Type", "application/json")
		// ServeContent handles If-None-Match, If-Modified-Since and HEAD.
		http.ServeContent(w, r, name, sampleModTime, bytes.NewReader(b))
	}))
}
