// Package shareddata reads the reference data that sits beside the
// repository in ../shared/data (upstream rules, ATT&CK, sample alerts) for
// tests, fuzz seeds and benchmarks. The project never ships a copy of it.
package shareddata

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Dir returns ../shared/data relative to the module root, found by walking
// up from the working directory to go.mod.
func Dir() string {
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join("..", "shared", "data")
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "data")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join("..", "shared", "data")
		}
		dir = parent
	}
}

// Path returns a file under Dir, e.g. Path("alerts/upstream-rules.jsonl").
func Path(rel string) string { return filepath.Join(Dir(), rel) }

// Lines returns the non-blank lines (trimmed, copied) of the files under Dir
// matching pattern, e.g. "alerts/*.jsonl", files in name order; nil when
// none exist.
func Lines(pattern string) [][]byte {
	files, _ := filepath.Glob(filepath.Join(Dir(), pattern))
	sort.Strings(files)
	var out [][]byte
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				out = append(out, bytes.Clone(line))
			}
		}
	}
	return out
}

// AlertMix returns the 242 upstream sample alerts (one per rule), the mix
// every stage benchmark uses; it skips tb when the data is absent.
func AlertMix(tb testing.TB) [][]byte {
	tb.Helper()
	lines := Lines("alerts/upstream-rules.jsonl")
	if len(lines) == 0 {
		tb.Skip("../shared/data/alerts/upstream-rules.jsonl not present")
	}
	return lines
}
