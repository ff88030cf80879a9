//go:build unix

package lock_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/txnpair/txnpair/lock"
)

const (
	// condaPoll is the sleep between the attempts of the polling waiter,
	// a conda-like loop of non-blocking lockf calls.
	condaPoll = 10 * time.Millisecond

	// handoffHold is the least time the other process holds the lock in
	// each round of the handoff benchmark, so that the waiter is asleep
	// when it is released. A random part of up to condaPoll is added so
	// that the polling waiter's phase varies as it would in real life.
	handoffHold = time.Millisecond
)

// BenchmarkHandoff measures the latency from another process's release of
// the lock to this process holding it: the holder reads CLOCK_MONOTONIC
// just before it releases, the waiter just after it acquires. It reports
// the median and 99th percentile over the rounds as p50-ns and p99-ns;
// ns/op is the round time, dominated by the hold. Targets for Acquire:
// p50 at most 100µs, p99 at most 1ms. "poll-10ms" is the baseline: a
// waiter that retries TryAcquire after sleeping 10ms, as conda does (with
// 1s sleeps).
func BenchmarkHandoff(b *testing.B) {
	b.Run("acquire", func(b *testing.B) {
		benchHandoff(b, func(path string) (*lock.Lock, error) {
			ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
			defer cancel()
			return lock.Acquire(ctx, path, lock.Exclusive)
		})
	})
	b.Run("acquire-nodeadline", func(b *testing.B) {
		benchHandoff(b, func(path string) (*lock.Lock, error) {
			return lock.Acquire(context.Background(), path, lock.Exclusive)
		})
	})
	b.Run("poll-10ms", func(b *testing.B) {
		benchHandoff(b, func(path string) (*lock.Lock, error) {
			for {
				l, err := lock.TryAcquire(path, lock.Exclusive)
				if !errors.Is(err, lock.ErrLocked) {
					return l, err
				}
				time.Sleep(condaPoll)
			}
		})
	})
}

func benchHandoff(b *testing.B, wait func(path string) (*lock.Lock, error)) {
	path := tempPath(b)
	holder := startServer(b, path)
	var lat []time.Duration
	for b.Loop() {
		hold := handoffHold + rand.N(condaPoll)
		if r := holder.do("holdfor " + strconv.FormatInt(int64(hold), 10)); r != "held" {
			b.Fatalf("holder: %s", r)
		}
		l, err := wait(path)
		now := monotonicNow()
		if err != nil {
			b.Fatal(err)
		}
		r, ok := strings.CutPrefix(holder.reply(), "released ")
		if !ok {
			b.Fatalf("holder: %s", r)
		}
		released, err := strconv.ParseInt(r, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Duration(now-released))
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ns")
}
