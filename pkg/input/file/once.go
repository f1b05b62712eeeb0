package file

import (
	"context"
	"fmt"
	"io"
	"os"
)

// ReadOnce reads path line by line to EOF. The last line need not end in "\n". Empty lines (also whitespace-only lines) are skipped silently.
// Returns nil at EOF, ctx.Err() if canceled, an error naming the path if it can't be opened or read.
// An error returned by emit stops the read and is returned as is.
func ReadOnce(ctx context.Context, path string, maxLine int, emit EmitFunc, oversize OversizeFunc) error {
	if maxLine <= 0 {
		return fmt.Errorf("input: max line size must be > 0, got %d", maxLine)
	}
	if emit == nil {
		return fmt.Errorf("input: nil emit function")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err // *fs.PathError: names the path
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	s := newSplitter(maxLine)
	s.reset(f, path, inodeOf(fi), 0, 0)
	// Read errors from *os.File are *fs.PathError too, so they name the path.
	if err := s.run(ctx, emit, oversize); err != io.EOF {
		return err
	}
	return s.flush(emit, oversize)
}

// ReadLines splits any reader (stdin, an embedded file) the way ReadOnce
// splits a file; name is what LinePos.Path reports.
func ReadLines(ctx context.Context, r io.Reader, name string, maxLine int, emit EmitFunc, oversize OversizeFunc) error {
	if maxLine <= 0 {
		return fmt.Errorf("input: max line size must be > 0, got %d", maxLine)
	}
	if emit == nil {
		return fmt.Errorf("input: nil emit function")
	}
	s := newSplitter(maxLine)
	s.reset(r, name, 0, 0, 0)
	if err := s.run(ctx, emit, oversize); err != io.EOF {
		return err
	}
	return s.flush(emit, oversize)
}
