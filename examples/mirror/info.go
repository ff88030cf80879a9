package main

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
)

// info is conda's <key>.info.json: the HTTP validators of the last download
// and the mtime and size of the <key>.json it produced.
type info struct {
	URL          string
	ETag         string
	Mod          string
	CacheControl string
	MtimeNS      int64
	Size         int64
	RefreshNS    int64
	// other holds every field this program does not manage (has_zst,
	// has_shards, has_jlap, jlap, ...), kept as found.
	other map[string]json.RawMessage
}

// parseInfo parses b, returning nil ("no state") when it is not one JSON
// object. conda's writer can leave its .info.json empty, or holding two
// documents back to back, and conda treats both as no state.
func parseInfo(b []byte) *info {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return nil
	}
	in := &info{other: raw}
	take := func(name string, v any) {
		if r, ok := raw[name]; ok {
			json.Unmarshal(r, v) // a field of the wrong type reads as empty
			delete(raw, name)
		}
	}
	take("url", &in.URL)
	take("etag", &in.ETag)
	take("mod", &in.Mod)
	take("cache_control", &in.CacheControl)
	take("mtime_ns", &in.MtimeNS)
	take("size", &in.Size)
	take("refresh_ns", &in.RefreshNS)
	return in
}

// newInfo returns a state that keeps prev's unmanaged fields, if any.
func newInfo(prev *info) *info {
	in := &info{other: map[string]json.RawMessage{}}
	if prev != nil {
		in.other = prev.other
	}
	return in
}

// matchesFile is conda's load check: the recorded mtime_ns and size are the
// data file's. When they are not, conda drops the HTTP validators and
// downloads again, and so does mirror.
func (in *info) matchesFile(dataPath string) bool {
	fi, err := os.Stat(dataPath)
	return err == nil && fi.ModTime().UnixNano() == in.MtimeNS && fi.Size() == in.Size
}

// encode renders the state as conda writes it: JSON indented by two spaces,
// the managed fields first, then the others sorted by name.
func (in *info) encode() []byte {
	type field struct {
		name string
		v    any
	}
	fields := []field{
		{"url", in.URL}, {"etag", in.ETag}, {"mod", in.Mod},
		{"cache_control", in.CacheControl}, {"mtime_ns", in.MtimeNS},
		{"size", in.Size}, {"refresh_ns", in.RefreshNS},
	}
	names := make([]string, 0, len(in.other))
	for name := range in.other {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fields = append(fields, field{name, in.other[name]})
	}
	var b bytes.Buffer
	b.WriteString("{")
	for i, f := range fields {
		if i > 0 {
			b.WriteString(",")
		}
		k, _ := json.Marshal(f.name)
		v, err := json.Marshal(f.v)
		if err != nil {
			v = []byte("null")
		}
		var iv bytes.Buffer
		json.Indent(&iv, v, "  ", "  ")
		b.WriteString("\n  ")
		b.Write(k)
		b.WriteString(": ")
		b.Write(iv.Bytes())
	}
	b.WriteString("\n}")
	return b.Bytes()
}
