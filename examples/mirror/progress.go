package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

const (
	// progressMinSize is the smallest download that gets a progress bar.
	progressMinSize = 4 << 20
	// progressInterval is how often the bar is redrawn.
	progressInterval = 200 * time.Millisecond
	// progressWidth is the width of the bar in characters.
	progressWidth = 30
)

// progress draws a bar for large downloads when out is a terminal, and does
// nothing otherwise.
type progress struct {
	out *os.File // nil when not a terminal
}

func newProgress(out *os.File) *progress {
	if !isTerminal(out) {
		return &progress{}
	}
	return &progress{out: out}
}

// reader wraps body so that reading it draws the bar. total is the expected
// size, or -1 when unknown.
func (p *progress) reader(name string, body io.Reader, total int64) io.Reader {
	if p.out == nil || (total >= 0 && total < progressMinSize) {
		return body
	}
	return &progressReader{p: p, name: name, r: body, total: total}
}

// done ends the bar's line, if one was drawn.
func (p *progress) done() {
	if p.out != nil {
		fmt.Fprint(p.out, "\r\033[K")
	}
}

type progressReader struct {
	p     *progress
	name  string
	r     io.Reader
	total int64
	n     int64
	last  time.Time
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.n += int64(n)
	if now := time.Now(); now.Sub(r.last) >= progressInterval || err == io.EOF {
		r.last = now
		r.draw()
	}
	return n, err
}

func (r *progressReader) draw() {
	if r.total <= 0 {
		fmt.Fprintf(r.p.out, "\r%-9s %s", r.name, humanBytes(r.n))
		return
	}
	filled := int(int64(progressWidth) * r.n / r.total)
	filled = min(filled, progressWidth)
	bar := make([]byte, progressWidth)
	for i := range bar {
		bar[i] = ' '
		if i < filled {
			bar[i] = '='
		}
	}
	fmt.Fprintf(r.p.out, "\r%-9s [%s] %3d%% %s / %s", r.name, bar, 100*r.n/r.total, humanBytes(r.n), humanBytes(r.total))
}
