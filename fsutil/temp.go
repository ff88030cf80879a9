package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Leftover files. txnpair leaves two kinds of files beside a pair while a
// transaction runs, and only these are ever removed by its clean-up:
//
//   - the staged data file, created by renameio in the data file's own
//     directory and named "." + base(data) + decimal digits;
//   - the commit record, beside the metadata file, named
//     "." + base(meta) + RecordSuffix.
//
// A staged file whose name has the data file's base followed by digits is
// ambiguous only if another file in the same directory is called base(data)
// followed by digits too; RemoveTemps therefore never touches a name for which
// such a file exists.

// RecordSuffix ends the name of a commit record.
const RecordSuffix = ".txnpair-commit"

// RecordPath returns the path of the commit record that belongs to the
// metadata file at metaPath.
func RecordPath(metaPath string) string {
	return filepath.Join(dirOf(metaPath), "."+filepath.Base(metaPath)+RecordSuffix)
}

// IsTempName reports whether name (a base name) is a staged data file for
// the data file whose base name is base.
func IsTempName(name, base string) bool {
	prefix := "." + base
	if len(name) <= len(prefix) || !strings.HasPrefix(name, prefix) {
		return false
	}
	for _, c := range name[len(prefix):] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// TempNames lists the staged data files for dataPath that exist in its
// directory, as full paths.
func TempNames(dataPath string) ([]string, error) {
	dir, base := dirOf(dataPath), filepath.Base(dataPath)
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	var out []string
	for _, n := range names {
		if !IsTempName(n, base) {
			continue
		}
		// ".k.json123" could also be the staged file of a sibling data file
		// "k.json1" (".k.json1"+"23"); leave it alone when such a sibling
		// exists.
		if ambiguous(n, base, present) {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	return out, nil
}

func ambiguous(name, base string, present map[string]bool) bool {
	digits := name[len(base)+1:]
	for i := 1; i < len(digits); i++ {
		if present[base+digits[:i]] {
			return true
		}
	}
	return false
}

// RemoveFiles removes the files at paths and returns those it removed.
// Files that vanished meanwhile count as removed.
func RemoveFiles(paths []string) ([]string, error) {
	var removed []string
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}
