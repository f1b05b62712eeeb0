// Package file reads Falco alert files (NDJSON, one JSON object per line),
// either once to EOF or following them like `tail -F`.
package file

import (
	"bufio"
	"context"
	"io"
	"os"
	"reflect"
)

// LinePos says where a line came from. Offset is the byte offset just after the line's terminator in the
// file it was read from (so a restart could resume there); Inode identifies that file (0 if unknown);
// LineNo is 1-based within that file (it restarts at 1 after rotation or truncation).
type LinePos struct {
	Path   string
	Inode  uint64
	LineNo int64
	Offset int64
}

// EmitFunc receives one line without its terminator ("\n" or "\r\n"); the slice is valid only during the call.
// It may block (that is how backpressure works). A non-nil error stops the reader and is returned by it.
type EmitFunc func(line []byte, pos LinePos) error

// OversizeFunc is told about a line longer than the maximum, which was skipped
// (length = its full length in bytes, without terminator).
type OversizeFunc func(pos LinePos, length int64)

// readBufSize is the fixed read buffer. Together with the per-line
// accumulator (at most maxLine+1 bytes) it bounds memory per file.
const readBufSize = 64 << 10

// splitter is the line-splitting core shared by ReadOnce and Follow, so both
// treat terminators, blank lines and oversize lines identically.
//
// It keeps its state across io.EOF: a trailing partial line stays pending
// and is completed by later reads when the file grows (Follow), or handed
// out by flush when no more data will come (ReadOnce, rotation).
type splitter struct {
	br  *bufio.Reader
	max int

	// Current (pending) line.
	acc   []byte // its bytes while it may still fit: never more than max+1 (room for a '\r' before "\n")
	n     int64  // its full length so far, whether kept in acc or not
	drop  bool   // longer than max+1: bytes are only counted, not kept
	blank bool   // every byte so far is ASCII whitespace
	last  byte   // its last byte, to strip the '\r' of "\r\n" even when dropping

	read int64   // bytes consumed from the file, including the pending line
	pos  LinePos // position of the last completed line
}

func newSplitter(maxLine int) *splitter {
	return &splitter{br: bufio.NewReaderSize(nil, readBufSize), max: maxLine, blank: true}
}

// reset starts reading r, which is positioned at offset, where lineNo lines
// have already been seen. Any pending partial line is dropped.
func (s *splitter) reset(r io.Reader, path string, inode uint64, offset, lineNo int64) {
	s.br.Reset(r)
	s.clearLine()
	s.read = offset
	s.pos = LinePos{Path: path, Inode: inode, LineNo: lineNo, Offset: offset}
}

func (s *splitter) clearLine() {
	s.acc = s.acc[:0]
	s.n, s.drop, s.blank, s.last = 0, false, true, 0
}

// pending is the length of the partial line held so far (0 if none).
func (s *splitter) pending() int64 { return s.n }

// note accounts for b as part of the current line without keeping it.
func (s *splitter) note(b []byte) {
	if len(b) == 0 {
		return
	}
	s.n += int64(len(b))
	s.last = b[len(b)-1]
	if s.blank {
		s.blank = isBlank(b)
	}
}

// add appends b to the current line, switching to drop mode once the line
// can no longer fit so that memory stays bounded whatever the line length.
func (s *splitter) add(b []byte) {
	if len(b) == 0 {
		return
	}
	s.note(b)
	if s.drop {
		return
	}
	need := len(s.acc) + len(b)
	if need > s.max+1 {
		s.drop = true
		s.acc = s.acc[:0]
		return
	}
	if need > cap(s.acc) {
		// Grow by hand: append's growth could overshoot the max+1 bound.
		c := min(max(2*cap(s.acc), need, 4096), s.max+1)
		nb := make([]byte, len(s.acc), c)
		copy(nb, s.acc)
		s.acc = nb
	}
	s.acc = append(s.acc, b...)
}

// run splits lines until the reader reports an error, which it returns:
// io.EOF means "no more data for now" and leaves a partial line pending.
// An emit error or ctx.Err() is returned as is.
func (s *splitter) run(ctx context.Context, emit EmitFunc, oversize OversizeFunc) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk, err := s.br.ReadSlice('\n')
		s.read += int64(len(chunk))
		switch err {
		case nil: // chunk ends with '\n'
			body := chunk[:len(chunk)-1]
			if s.n == 0 && len(body) <= s.max+1 {
				// Common case: the whole line is in the read buffer; emit it without copying.
				s.note(body)
			} else {
				s.add(body)
				body = s.acc
			}
			if err := s.end(body, true, emit, oversize); err != nil {
				return err
			}
		case bufio.ErrBufferFull:
			s.add(chunk)
		default:
			s.add(chunk)
			return err
		}
	}
}

// flush hands out a pending unterminated line as a final line, for when the
// file is known not to grow any more.
func (s *splitter) flush(emit EmitFunc, oversize OversizeFunc) error {
	if s.n == 0 {
		return nil
	}
	return s.end(s.acc, false, emit, oversize)
}

// end completes the current line. line holds its bytes unless it was dropped.
func (s *splitter) end(line []byte, terminated bool, emit EmitFunc, oversize OversizeFunc) error {
	s.pos.LineNo++
	s.pos.Offset = s.read
	n, drop, blank := s.n, s.drop, s.blank
	if terminated && n > 0 && s.last == '\r' {
		n-- // "\r\n" terminator
		if !drop {
			line = line[:len(line)-1]
		}
	}
	s.clearLine() // line may alias acc: it stays intact until the next add
	switch {
	case blank:
		return nil
	case n > int64(s.max):
		if oversize != nil {
			oversize(s.pos, n)
		}
		return nil
	}
	return emit(line, s.pos)
}

// isBlank reports whether b is only ASCII whitespace. ASCII only on purpose:
// the lines are JSON, where only these count as insignificant whitespace.
func isBlank(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n', '\v', '\f':
		default:
			return false
		}
	}
	return true
}

// inodeOf returns the inode number from fi, or 0 where the platform has
// none. It goes through reflection so this file builds on every OS (the
// Sys() type differs); identity checks use os.SameFile, not this.
func inodeOf(fi os.FileInfo) uint64 {
	if fi == nil {
		return 0
	}
	v := reflect.ValueOf(fi.Sys())
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return 0
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0
	}
	f := v.FieldByName("Ino")
	if !f.IsValid() || !f.CanUint() {
		return 0
	}
	return f.Uint()
}
