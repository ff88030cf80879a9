//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// samples is a set of durations measured for one side of a scenario.
type samples []time.Duration

// pct returns the p-th percentile (0 < p <= 100) by the nearest-rank method.
func (s samples) pct(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(math.Ceil(p/100*float64(len(c)))) - 1
	return c[max(0, min(i, len(c)-1))]
}

// Kinds of value in a row, which decide how it is printed.
const (
	unitDuration = "duration" // nanoseconds
	unitRate     = "rate"     // operations per second
	unitRatio    = "ratio"    // a plain number
	unitBytes    = "bytes"
)

// row is one line of the result table. Ours and Base are in Unit; Ratio is
// Ours/Base; Met is nil when the row has no target.
type row struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Unit     string  `json:"unit"`
	Ours     float64 `json:"ours"`
	Base     float64 `json:"baseline,omitempty"`
	BaseName string  `json:"baseline_name,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	Target   string  `json:"target,omitempty"`
	Met      *bool   `json:"met,omitempty"`
	N        int     `json:"n"` // samples per side, or processes
	Note     string  `json:"note,omitempty"`
}

// latencyRows compares two sets of samples at p50 and p99. The ratio target
// (ours/baseline at most maxRatio, 0 for none) applies to the median; the p99
// row is for information, since one noisy neighbour moves it.
func latencyRows(scenario, baseName string, ours, base samples, maxRatio float64) []row {
	var rows []row
	for _, p := range []float64{50, 99} {
		o, b := ours.pct(p), base.pct(p)
		r := row{
			Scenario: scenario, Metric: fmt.Sprintf("p%g", p), Unit: unitDuration,
			Ours: float64(o), Base: float64(b), BaseName: baseName, N: len(ours),
		}
		if b > 0 {
			r.Ratio = float64(o) / float64(b)
		}
		if p == 50 && maxRatio > 0 {
			r.Target = fmt.Sprintf("≤ %.2g×", maxRatio)
			r.Met = ptr(r.Ratio <= maxRatio)
		}
		rows = append(rows, r)
	}
	return rows
}

func ptr[T any](v T) *T { return &v }

// env describes where the figures were taken.
type env struct {
	Date      string  `json:"date"`
	GOOS      string  `json:"goos"`
	GOARCH    string  `json:"goarch"`
	Cores     int     `json:"cores"`
	Kernel    string  `json:"kernel"`
	CPU       string  `json:"cpu,omitempty"`
	GoVersion string  `json:"go"`
	Dir       string  `json:"dir"`
	FSType    string  `json:"fstype"`
	Mode      string  `json:"mode"`
	LoadStart float64 `json:"load_start"` // 1-minute load average, where known
	LoadEnd   float64 `json:"load_end"`
	Elapsed   string  `json:"elapsed"`
}

type result struct {
	Env  env   `json:"env"`
	Rows []row `json:"rows"`
}

func writeJSON(w io.Writer, res result) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(res)
}

// writeTable prints the result as one markdown table, with a header naming
// the machine, the filesystem and the date.
func writeTable(w io.Writer, res result) error {
	e := res.Env
	var b strings.Builder
	fmt.Fprintf(&b, "txnpair bench (%s), %s\n\n", e.Mode, e.Date)
	fmt.Fprintf(&b, "- machine: %d cores, %s/%s, kernel %s", e.Cores, e.GOOS, e.GOARCH, e.Kernel)
	if e.CPU != "" {
		fmt.Fprintf(&b, ", %s", e.CPU)
	}
	fmt.Fprintf(&b, "\n- filesystem: %s (%s)\n", e.FSType, e.Dir)
	fmt.Fprintf(&b, "- %s; load average %.2f at start, %.2f at end; took %s\n\n", e.GoVersion, e.LoadStart, e.LoadEnd, e.Elapsed)
	b.WriteString("| scenario | metric | ours | baseline | ratio | target | met |\n")
	b.WriteString("|---|---|---:|---:|---:|---|---|\n")
	for _, r := range res.Rows {
		base := "—"
		if r.BaseName != "" {
			base = fmtValue(r.Unit, r.Base) + " (" + r.BaseName + ")"
		}
		ratio := "—"
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		target, met := "—", "—"
		if r.Target != "" {
			target = r.Target
		}
		if r.Met != nil {
			met = "yes"
			if !*r.Met {
				met = "**no**"
			}
		}
		metric := r.Metric
		if r.Note != "" {
			metric += " (" + r.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, metric, fmtValue(r.Unit, r.Ours), base, ratio, target, met)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtValue(unit string, v float64) string {
	switch unit {
	case unitDuration:
		return fmtDuration(time.Duration(v))
	case unitRate:
		return fmt.Sprintf("%.0f/s", v)
	case unitBytes:
		return fmtBytes(int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2f µs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtBytes(n int64) string {
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%s%d GiB", neg, n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%s%d MiB", neg, n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%s%.0f KiB", neg, float64(n)/(1<<10))
	}
	return fmt.Sprintf("%s%d B", neg, n)
}
