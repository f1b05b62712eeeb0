package file

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/internal/shareddata"
)

// sharedAlertLines returns the lines of ../shared/data/alerts/*.jsonl
// (nil when the reference data is absent).
func sharedAlertLines() [][]byte { return shareddata.Lines("alerts/*.jsonl") }

type refLine struct {
	text     string
	oversize int64 // >0: skipped, with this length
	lineNo   int64
	offset   int64
}

// referenceSplit is the splitting rule written the obvious way: split on
// "\n", strip one "\r" before a "\n", skip lines of ASCII whitespace, skip
// lines longer than max (reporting their length).
func referenceSplit(data []byte, max int) []refLine {
	var out []refLine
	var lineNo, off int64
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		terminated := i >= 0
		if terminated {
			line, data = data[:i], data[i+1:]
			off += int64(i + 1)
		} else {
			line, data = data, nil
			off += int64(len(line))
		}
		lineNo++
		if terminated && len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if isBlank(line) {
			continue
		}
		r := refLine{lineNo: lineNo, offset: off}
		if len(line) > max {
			r.oversize = int64(len(line))
		} else {
			r.text = string(line)
		}
		out = append(out, r)
	}
	return out
}

// chunkReader returns data in pieces of varying size, so that the
// splitter sees lines cut at every possible point between reads.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)]) + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzReadLines compares the line splitter with referenceSplit, with a
// small maximum line length (so the drop path for long lines is exercised)
// and reads cut at fuzzed sizes.
func FuzzReadLines(f *testing.F) {
	for _, l := range sharedAlertLines() {
		f.Add(append(l, '\n'), uint8(200), []byte{7, 255, 0})
	}
	for _, s := range []string{
		"", "\n", "\r\n", "a", "a\n", "a\r\n", "a\r", "\r\r\n", "a\nb", "a\n\nb\n", " \t\n\v\f\r\n",
		"abcdefgh\nabcdefghi\nabcdefghij\r\nx", strings.Repeat("y", 70000) + "\nz\n", "\x00\n\xff\xfe\n",
	} {
		f.Add([]byte(s), uint8(8), []byte{0, 3, 1})
	}
	f.Fuzz(func(t *testing.T, data []byte, maxLine uint8, sizes []byte) {
		max := int(maxLine%64) + 1
		// A hang is a finding too: crash the worker so the fuzzer keeps the input.
		wd := time.AfterFunc(10*time.Second, func() {
			panic(fmt.Sprintf("ReadLines hung: %d bytes, max %d, %d read sizes", len(data), max, len(sizes)))
		})
		defer wd.Stop()
		want := referenceSplit(data, max)
		var got []refLine
		emit := func(line []byte, pos LinePos) error {
			if len(line) > max {
				t.Fatalf("emitted %d bytes, over max %d", len(line), max)
			}
			got = append(got, refLine{text: string(line), lineNo: pos.LineNo, offset: pos.Offset})
			return nil
		}
		oversize := func(pos LinePos, n int64) {
			got = append(got, refLine{oversize: n, lineNo: pos.LineNo, offset: pos.Offset})
		}
		err := ReadLines(context.Background(), &chunkReader{data: data, sizes: sizes}, "fuzz", max, emit, oversize)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("max %d: got %d lines %+v, want %d %+v", max, len(got), got, len(want), want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("max %d: line %d: got %+v, want %+v", max, i, got[i], want[i])
			}
		}
	})
}
