package file

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadOnceMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.json")
	var s sink
	err := ReadOnce(context.Background(), p, 100, s.emit, s.oversize)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, p)
}

func TestReadOnceDirectory(t *testing.T) {
	d := t.TempDir()
	var s sink
	err := ReadOnce(context.Background(), d, 100, s.emit, s.oversize)
	require.Error(t, err)
	require.ErrorContains(t, err, d)
}

func TestReadOnceBadMaxLine(t *testing.T) {
	p := writeTemp(t, "a\n")
	var s sink
	require.Error(t, ReadOnce(context.Background(), p, 0, s.emit, s.oversize))
	require.Empty(t, s.lines)
}

func TestReadOnceNilOversize(t *testing.T) {
	p := writeTemp(t, strings.Repeat("x", 20)+"\nok\n")
	var s sink
	require.NoError(t, ReadOnce(context.Background(), p, 10, s.emit, nil))
	require.Equal(t, []string{"ok"}, s.texts())
}

func TestReadOnceCanceled(t *testing.T) {
	p := writeTemp(t, strings.Repeat("{}\n", 100))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var s sink
	require.ErrorIs(t, ReadOnce(ctx, p, 100, s.emit, s.oversize), context.Canceled)
	require.Empty(t, s.lines)

	// Canceled while reading: stops at the next line.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err := ReadOnce(ctx, p, 100, func([]byte, LinePos) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	}, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 3, n)
}

func TestReadOnceEmitErrorStops(t *testing.T) {
	p := writeTemp(t, "a\nb\nc\nd")
	errStop := errors.New("stop")
	var got []string
	err := ReadOnce(context.Background(), p, 100, func(line []byte, _ LinePos) error {
		got = append(got, string(line))
		if len(got) == 2 {
			return errStop
		}
		return nil
	}, nil)
	require.ErrorIs(t, err, errStop)
	require.Equal(t, []string{"a", "b"}, got)

	// Also for the unterminated last line, emitted by the final flush.
	err = ReadOnce(context.Background(), p, 100, func(line []byte, _ LinePos) error {
		if string(line) == "d" {
			return errStop
		}
		return nil
	}, nil)
	require.ErrorIs(t, err, errStop)
}
