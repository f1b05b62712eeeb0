package file

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type gotLine struct {
	line string
	pos  LinePos
}

type gotOversize struct {
	pos    LinePos
	length int64
}

// sink collects emitted lines and oversize reports (copying: the slice is only valid during emit).
type sink struct {
	lines []gotLine
	overs []gotOversize
}

func (s *sink) emit(line []byte, pos LinePos) error {
	s.lines = append(s.lines, gotLine{string(line), pos})
	return nil
}

func (s *sink) oversize(pos LinePos, length int64) {
	s.overs = append(s.overs, gotOversize{pos, length})
}

func (s *sink) texts() []string {
	out := make([]string, 0, len(s.lines))
	for _, l := range s.lines {
		out = append(out, l.line)
	}
	return out
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "alerts.json")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func readAll(t *testing.T, content string, maxLine int) (*sink, string) {
	t.Helper()
	p := writeTemp(t, content)
	var s sink
	require.NoError(t, ReadOnce(context.Background(), p, maxLine, s.emit, s.oversize))
	return &s, p
}

func TestLinesEndings(t *testing.T) {
	s, p := readAll(t, "a\nbb\r\nccc", 100)
	require.Empty(t, s.overs)
	require.Equal(t, []string{"a", "bb", "ccc"}, s.texts())
	for i, want := range []struct{ lineNo, offset int64 }{{1, 2}, {2, 6}, {3, 9}} {
		require.Equal(t, p, s.lines[i].pos.Path)
		require.Equal(t, want.lineNo, s.lines[i].pos.LineNo, "line %d", i)
		require.Equal(t, want.offset, s.lines[i].pos.Offset, "line %d", i)
		require.NotZero(t, s.lines[i].pos.Inode)
	}
}

func TestLinesLoneCRIsNotATerminator(t *testing.T) {
	// Only "\n" and "\r\n" end lines; a '\r' elsewhere is content.
	s, _ := readAll(t, "a\rb\nc\r\r\n", 100)
	require.Equal(t, []string{"a\rb", "c\r"}, s.texts())
}

func TestLinesBlankSkipped(t *testing.T) {
	s, _ := readAll(t, "\n  \n\t\r\n x \n\r\n\v\f\n{}\n   ", 100)
	require.Empty(t, s.overs)
	require.Equal(t, []string{" x ", "{}"}, s.texts())
	require.Equal(t, int64(4), s.lines[0].pos.LineNo)
	require.Equal(t, int64(7), s.lines[1].pos.LineNo)
}

func TestLinesEmptyFile(t *testing.T) {
	s, _ := readAll(t, "", 100)
	require.Empty(t, s.lines)
	require.Empty(t, s.overs)
}

func TestLinesMaxBoundary(t *testing.T) {
	// Sizes below and above the 64 KiB read buffer, so lines are both
	// emitted straight from the buffer and accumulated across reads.
	for _, max := range []int{10, readBufSize - 1, readBufSize, readBufSize + 1, 200 << 10} {
		exact := strings.Repeat("x", max)
		over := strings.Repeat("y", max+1)
		content := exact + "\n" + // kept
			exact + "\r\n" + // kept: the '\r' belongs to the terminator
			over + "\n" + // skipped
			over + "\r\n" + // skipped
			"after\n" +
			exact + "\r" + "\n" + // kept (same as CRLF)
			over // unterminated last line, skipped
		s, _ := readAll(t, content, max)
		require.Equal(t, []string{exact, exact, "after", exact}, s.texts(), "max %d", max)
		require.Equal(t, []int64{1, 2, 5, 6}, []int64{s.lines[0].pos.LineNo, s.lines[1].pos.LineNo, s.lines[2].pos.LineNo, s.lines[3].pos.LineNo})
		require.Len(t, s.overs, 3, "max %d", max)
		for i, want := range []struct{ lineNo, offset int64 }{
			{3, int64(2*max + 3 + max + 2)},
			{4, int64(2*max + 3 + max + 2 + max + 3)},
			{7, int64(len(content))},
		} {
			require.Equal(t, int64(max+1), s.overs[i].length, "max %d oversize %d", max, i)
			require.Equal(t, want.lineNo, s.overs[i].pos.LineNo, "max %d oversize %d", max, i)
			require.Equal(t, want.offset, s.overs[i].pos.Offset, "max %d oversize %d", max, i)
		}
	}
}

func TestLinesHugeLineBoundedMemory(t *testing.T) {
	const max = 1 << 20
	huge := bytes.Repeat([]byte("z"), 5<<20)
	p := filepath.Join(t.TempDir(), "alerts.json")
	content := append([]byte("{\"a\":1}\n"), huge...)
	content = append(content, "\n{\"b\":2}\n"...)
	require.NoError(t, os.WriteFile(p, content, 0o600))
	huge, content = nil, nil

	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	var s sink
	sp := newSplitter(max)
	sp.reset(f, p, 0, 0, 0)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	require.Equal(t, io.EOF, sp.run(context.Background(), s.emit, s.oversize))
	runtime.ReadMemStats(&after)

	require.Equal(t, []string{`{"a":1}`, `{"b":2}`}, s.texts())
	require.Equal(t, int64(3), s.lines[1].pos.LineNo)
	require.Equal(t, []gotOversize{{LinePos{Path: p, LineNo: 2, Offset: 8 + 5<<20 + 1}, 5 << 20}}, s.overs)
	// The accumulator never holds more than max+1 bytes, and the whole run
	// allocates far less than the 5 MiB line (buffering it would take >5 MiB).
	require.LessOrEqual(t, cap(sp.acc), max+1)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4<<20))
}

func TestLinesInvalidUTF8PassedThrough(t *testing.T) {
	bad := "{\"a\":\"\xff\xfe\xc3\x28\x00\x80\"}"
	s, _ := readAll(t, bad+"\n\xed\xa0\x80\n", 100)
	require.Equal(t, []string{bad, "\xed\xa0\x80"}, s.texts())
}

func TestLinesOffsetsResume(t *testing.T) {
	content := "{\"n\":1}\n\n  \r\n{\"n\":2}\r\n" + strings.Repeat("o", 50) + "\n{\"n\":3}\n{\"n\":4}"
	const max = 20
	all, p := readAll(t, content, max)
	require.Equal(t, []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`}, all.texts())
	require.Len(t, all.overs, 1)
	require.Equal(t, int64(len(content)), all.lines[len(all.lines)-1].pos.Offset)

	// Resuming at any reported Offset yields exactly the remaining lines.
	for i, l := range all.lines {
		f, err := os.Open(p)
		require.NoError(t, err)
		_, err = f.Seek(l.pos.Offset, io.SeekStart)
		require.NoError(t, err)
		var s sink
		sp := newSplitter(max)
		sp.reset(f, p, 0, l.pos.Offset, l.pos.LineNo)
		require.Equal(t, io.EOF, sp.run(context.Background(), s.emit, s.oversize))
		require.NoError(t, sp.flush(s.emit, s.oversize))
		require.NoError(t, f.Close())
		require.Equal(t, all.texts()[i+1:], s.texts(), "resume after line %d", i)
		for j, r := range s.lines {
			require.Equal(t, all.lines[i+1+j].pos, LinePos{Path: r.pos.Path, Inode: all.lines[i+1+j].pos.Inode, LineNo: r.pos.LineNo, Offset: r.pos.Offset})
		}
	}
}

func TestSplitterHoldsPartialLineAcrossEOF(t *testing.T) {
	p := writeTemp(t, "one\ntw")
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	defer w.Close()

	var s sink
	sp := newSplitter(100)
	sp.reset(f, p, 0, 0, 0)
	ctx := context.Background()
	require.Equal(t, io.EOF, sp.run(ctx, s.emit, s.oversize))
	require.Equal(t, []string{"one"}, s.texts())
	require.Equal(t, int64(2), sp.pending())

	_, err = w.WriteString("o\r")
	require.NoError(t, err)
	require.Equal(t, io.EOF, sp.run(ctx, s.emit, s.oversize))
	require.Equal(t, []string{"one"}, s.texts(), "no line before its newline")

	_, err = w.WriteString("\nthree\n")
	require.NoError(t, err)
	require.Equal(t, io.EOF, sp.run(ctx, s.emit, s.oversize))
	require.Equal(t, []string{"one", "two", "three"}, s.texts())
	require.Equal(t, LinePos{Path: p, LineNo: 2, Offset: 9}, s.lines[1].pos)
	require.Zero(t, sp.pending())
}

func TestSplitterOversizeAcrossEOF(t *testing.T) {
	// An oversize line arriving in pieces is dropped, and the next line is intact.
	p := writeTemp(t, "")
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	defer w.Close()

	var s sink
	sp := newSplitter(8)
	sp.reset(f, p, 0, 0, 0)
	for _, piece := range []string{"abcde", "fghij", "klmno", "\r", "\nok\n"} {
		_, err = w.WriteString(piece)
		require.NoError(t, err)
		require.Equal(t, io.EOF, sp.run(context.Background(), s.emit, s.oversize))
	}
	require.Equal(t, []string{"ok"}, s.texts())
	require.Equal(t, []gotOversize{{LinePos{Path: p, LineNo: 1, Offset: 17}, 15}}, s.overs)
	require.LessOrEqual(t, cap(sp.acc), 9)
}

func TestLinesBlankOversizeSkippedSilently(t *testing.T) {
	s, _ := readAll(t, strings.Repeat(" ", 100)+"\nx\n", 10)
	require.Empty(t, s.overs)
	require.Equal(t, []string{"x"}, s.texts())
}
