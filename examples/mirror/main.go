// Command mirror mirrors conda channel repodata into a conda-format cache
// directory, one transaction per subdir, so that conda (which reads its cache
// under the same lock) never sees a repodata.json from one download with the
// .info.json of another.
//
// Usage:
//
//	mirror [-channel URL] [-subdirs linux-64,noarch] [-cache DIR] [-timeout 2m] [-no-sync]
//
// For each subdir it sends GET <channel>/<subdir>/repodata.json with the
// If-None-Match and If-Modified-Since headers taken from the cached
// .info.json. On 200 it streams the body into the transaction's data file,
// checks that it is one JSON object, and commits <key>.json and
// <key>.info.json together, where <key> is conda's cache key (the first 8 hex
// digits of the MD5 of the subdir URL with a trailing slash) and the
// .info.json carries conda's fields, its mtime_ns and size those of the
// committed <key>.json, so conda's load check accepts the pair. On 304 it
// commits the .info.json alone with a new refresh_ns. An HTTP error, a
// timeout or a body that is not JSON rolls the transaction back: the cached
// pair stays as it was, and mirror exits with status 1.
//
// With no -channel, mirror serves an embedded sample channel (two subdirs,
// linux-64 and noarch) on a loopback port, under the fixed name
// http://sample.invalid/channel so that its cache keys do not change from run
// to run, mirrors it into ./mirror-cache, then mirrors it again to show the
// 304 path.
//
// Point conda at the result with pkgs_dirs: the cache directory conda reads
// is <pkgs_dir>/cache.
//
// The body is downloaded and checked in a private temporary file (in
// $TMPDIR) without the lock; the exclusive lock is held only while it is
// copied into the cache and committed, so conda, which gives up waiting after
// about 9 s, never waits for the network. The cost is one local copy of the
// data. Only repodata.json is fetched (no .zst, no shards, no JLAP), so
// has_zst and has_shards are kept as found.
//
// Exit status: 0 when every subdir was mirrored or found unchanged, 1 when
// any failed, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/txnpair/txnpair/txn"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// defaultCache is where the cache goes when -cache is not given.
const defaultCache = "mirror-cache"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("mirror", flag.ContinueOnError)
	fl.SetOutput(stderr)
	channel := fl.String("channel", "", "channel URL, e.g. https://conda.anaconda.org/conda-forge (default: serve the embedded sample channel)")
	subdirs := fl.String("subdirs", "linux-64,noarch", "comma-separated subdirs to mirror")
	cache := fl.String("cache", defaultCache, "cache directory (created if missing)")
	timeout := fl.Duration("timeout", 2*time.Minute, "limit for each subdir: request, download and commit")
	noSync := fl.Bool("no-sync", false, "commit without fsync (txn.NoSync): crash-atomic, not power-loss durable")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: mirror [flags]\n\nMirrors channel repodata into a conda-format cache directory.\nWith no -channel it mirrors an embedded sample channel twice (200, then 304).\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "mirror: unexpected argument %q\n", fl.Arg(0))
		fl.Usage()
		return exitUsage
	}
	var subs []string
	for s := range strings.SplitSeq(*subdirs, ",") {
		if s = strings.TrimSpace(s); s != "" {
			subs = append(subs, s)
		}
	}
	if len(subs) == 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "mirror: -subdirs must name a subdir and -timeout must be positive")
		return exitUsage
	}

	m := &mirror{
		client:   &http.Client{},
		cache:    *cache,
		timeout:  *timeout,
		progress: newProgress(os.Stdout),
		stdout:   stdout,
	}
	if *noSync {
		m.opts = append(m.opts, txn.WithDurability(txn.NoSync))
	}
	rounds := 1
	if *channel == "" {
		srv, err := serveSample()
		if err != nil {
			fmt.Fprintf(stderr, "mirror: sample channel: %v\n", err)
			return exitFailure
		}
		defer srv.Close()
		*channel = srv.URL
		m.client = srv.client()
		rounds = 2
		fmt.Fprintf(stdout, "serving the embedded sample channel as %s (on %s)\n", srv.URL, srv.Addr)
	}
	if err := os.MkdirAll(m.cache, 0o755); err != nil {
		fmt.Fprintf(stderr, "mirror: %v\n", err)
		return exitFailure
	}

	start := time.Now()
	failed := 0
	for r := 1; r <= rounds; r++ {
		if rounds > 1 {
			fmt.Fprintf(stdout, "round %d:\n", r)
		}
		for _, sub := range subs {
			res, err := m.subdir(context.Background(), *channel, sub)
			if err != nil {
				failed++
				fmt.Fprintf(stderr, "mirror: %s: %v (the cached pair is unchanged)\n", sub, err)
				continue
			}
			fmt.Fprintf(stdout, "  %s\n", res)
		}
	}
	fmt.Fprintf(stdout, "%d subdir(s), %d round(s) into %s in %v", len(subs), rounds, m.cache, time.Since(start).Round(time.Millisecond))
	if failed > 0 {
		fmt.Fprintf(stdout, ", %d failed\n", failed)
		return exitFailure
	}
	fmt.Fprintln(stdout)
	return exitOK
}
