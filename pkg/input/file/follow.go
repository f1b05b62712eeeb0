package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// defaultPollInterval is the stat polling period when FollowOptions.PollInterval is zero.
const defaultPollInterval = 250 * time.Millisecond

type FollowOptions struct {
	MaxLine      int                              // bytes; required > 0
	StartAtEnd   bool                             // true: like `tail -F -n0` (only lines appended after start); false: from the beginning
	PollInterval time.Duration                    // safety-net stat polling when fsnotify is silent; default 250ms when zero
	Logf         func(format string, args ...any) // may be nil
	// StateFile, when set, records the followed file's inode and the offset after the last line emit
	// accepted (or skipped as oversize), at most every 100 ms and when Follow returns; at start, reading
	// resumes there if the state matches the file (see state.go). Empty: no state.
	StateFile string
}

// Follow follows path like `tail -F` until ctx is canceled (then returns ctx.Err()).
//
// Behaviour:
//   - the file may not exist yet at start: Follow waits for it (logging once), then reads it from the beginning;
//   - appended lines are emitted in order as soon as fsnotify reports a write (stat polling as a fallback);
//   - a trailing partial line is held until its "\n" arrives;
//   - rotation (path names another file): the old file is read to its end, its unterminated last line,
//     if any, is emitted, then the new file is read from its beginning. While path does not exist
//     (removed or renamed, new file not created yet) the old file stays open and is still read;
//   - truncation (size < read offset, copytruncate): reading restarts at offset 0 of the same file,
//     a held partial line is dropped (and logged);
//   - with StartAtEnd and an existing file, reading starts after the file's last "\n" (so a line being
//     written at start is not torn), and LineNo counts the lines before it (the file is scanned once).
//
// An error from emit stops Follow and is returned. Memory per followed file is bounded by a 64 KiB read
// buffer plus at most MaxLine+1 bytes for the current line.
//
// Limits (the same as any tail -F, which only sees paths and sizes):
//   - lines written to the old file after Follow switched to the new one are lost (the writer should
//     reopen promptly, as Falco does on SIGHUP or with keep_alive off);
//   - if path is rotated twice before Follow notices (fsnotify event or poll), the intermediate file is
//     never opened and its lines are lost;
//   - truncation is detected only as "size < offset": a truncation followed by writes that bring the file
//     back to at least the old offset before Follow looks (a tiny window with fsnotify, up to a poll
//     interval without) goes unnoticed, and reading resumes mid-file at the old offset;
//   - with copytruncate, lines written between logrotate's copy and its truncation are in the copy only;
//   - events are only watched in path's directory: if path is a symlink, or the directory itself is
//     removed and recreated, changes are seen by polling only.
func Follow(ctx context.Context, path string, opts FollowOptions, emit EmitFunc, oversize OversizeFunc) error {
	if opts.MaxLine <= 0 {
		return fmt.Errorf("input: follow %s: MaxLine must be > 0, got %d", path, opts.MaxLine)
	}
	if opts.PollInterval < 0 {
		return fmt.Errorf("input: follow %s: negative PollInterval %v", path, opts.PollInterval)
	}
	if emit == nil {
		return fmt.Errorf("input: follow %s: nil emit function", path)
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = defaultPollInterval
	}
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("input: follow %s: directory %s: %w", path, dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("input: follow %s: %s is not a directory", path, dir)
	}
	// Watch the directory, not the file: a watch on the file is lost when it is renamed or removed.
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("input: follow %s: %w", path, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("input: follow %s: watch directory %s: %w", path, dir, err)
	}

	fo := &follower{
		path:     path,
		opts:     opts,
		emit:     emit,
		oversize: oversize,
		sp:       newSplitter(opts.MaxLine),
		atStart:  true,
	}
	defer fo.closeFile()
	if opts.StateFile != "" {
		fo.initState()
		defer fo.saveState(true) // runs before closeFile: the file is still open for the fingerprint
	}

	tick := time.NewTicker(opts.PollInterval)
	defer tick.Stop()
	for {
		if err := fo.step(ctx); err != nil {
			return err
		}
		fo.saveState(false)
		if err := fo.wait(ctx, w, tick); err != nil {
			return err
		}
	}
}

// initState loads the state file and wraps emit and oversize so that every
// handled line moves the recorded position.
func (fo *follower) initState() {
	fo.st = &stateTracker{file: fo.opts.StateFile, logf: fo.logf}
	saved, err := loadState(fo.opts.StateFile)
	switch {
	case err != nil:
		fo.logf("input: ignoring follow state: %v; starting per follow.startAt", err)
	case saved != nil:
		fo.saved = saved
	}
	emit, oversize := fo.emit, fo.oversize
	fo.emit = func(line []byte, pos LinePos) error {
		if err := emit(line, pos); err != nil {
			return err
		}
		fo.st.handled(pos)
		fo.saveState(false)
		return nil
	}
	fo.oversize = func(pos LinePos, length int64) {
		if oversize != nil {
			oversize(pos, length)
		}
		fo.st.handled(pos)
	}
}

// saveState writes the state if a save is due (or pending, with force).
func (fo *follower) saveState(force bool) {
	if fo.st == nil || fo.f == nil {
		return
	}
	now := time.Now()
	if due, _ := fo.st.due(now); due || (force && fo.st.dirty) {
		fo.st.save(fo.f, now)
	}
}

// markPosition records the reading position as handled: at open (so that
// a restart resumes where this run started, not per startAt again) and
// after a truncation.
func (fo *follower) markPosition() {
	if fo.st != nil {
		fo.st.handled(fo.sp.pos)
	}
}

type follower struct {
	path     string
	opts     FollowOptions
	emit     EmitFunc
	oversize OversizeFunc
	sp       *splitter

	f       *os.File    // file being read; nil while waiting for path to exist
	fi      os.FileInfo // f's identity, for os.SameFile
	atStart bool        // the first open attempt is still to come (StartAtEnd applies only to it)
	orphan  bool        // path no longer exists; f is the old file, still read
	lastMsg string      // last "waiting"/stat problem logged, to log each once

	st    *stateTracker // nil without a state file
	saved *followState  // state loaded at start, used by the first open only
}

func (fo *follower) logf(format string, args ...any) {
	if fo.opts.Logf != nil {
		fo.opts.Logf(format, args...)
	}
}

// logOnce logs msg unless it is the same as the previous one-time message.
func (fo *follower) logOnce(msg string) {
	if msg != fo.lastMsg {
		fo.lastMsg = msg
		fo.logf("%s", msg)
	}
}

func (fo *follower) closeFile() {
	if fo.f != nil {
		fo.f.Close()
		fo.f, fo.fi = nil, nil
	}
}

// step reads everything currently readable and handles truncation and
// rotation. It returns nil when there is nothing more to do until the next
// event or tick.
func (fo *follower) step(ctx context.Context) error {
	for {
		if fo.f == nil {
			opened, err := fo.open(ctx)
			if err != nil || !opened {
				return err
			}
		}
		if err := fo.sp.run(ctx, fo.emit, fo.oversize); err != io.EOF {
			return err
		}

		st, err := fo.f.Stat()
		if err != nil {
			return fmt.Errorf("input: follow %s: %w", fo.path, err)
		}
		if st.Size() < fo.sp.read {
			if err := fo.truncated(st.Size()); err != nil {
				return err
			}
			continue
		}

		pst, err := os.Stat(fo.path)
		switch {
		case err == nil && os.SameFile(pst, fo.fi):
			fo.orphan = false
			return nil
		case err == nil:
			// Rotated: path names a new file. Drain the old one (it may have
			// grown since the read above), finish its last line, switch.
			if err := fo.sp.run(ctx, fo.emit, fo.oversize); err != io.EOF {
				return err
			}
			if err := fo.sp.flush(fo.emit, fo.oversize); err != nil {
				return err
			}
			fo.logf("input: %s was rotated (old inode %d, %d lines read); reading the new file", fo.path, fo.sp.pos.Inode, fo.sp.pos.LineNo)
			fo.saveState(true) // the old file's position, while it is still open
			fo.closeFile()
			fo.orphan = false
			continue
		case errors.Is(err, fs.ErrNotExist):
			// Removed or renamed without a replacement yet: the writer may
			// still append to the old file, so keep reading it meanwhile.
			if !fo.orphan {
				fo.orphan = true
				fo.logf("input: %s disappeared; still reading the old file until a new one appears", fo.path)
			}
			return nil
		default:
			fo.logOnce(fmt.Sprintf("input: follow %s: %v", fo.path, err))
			return nil
		}
	}
}

// open tries to open path. It reports false (and logs once) while the file
// does not exist or cannot be opened: tail -F keeps retrying too.
func (fo *follower) open(ctx context.Context) (bool, error) {
	atStart := fo.atStart
	fo.atStart = false
	f, err := os.Open(fo.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fo.logOnce(fmt.Sprintf("input: waiting for %s to appear", fo.path))
		} else {
			fo.logOnce(fmt.Sprintf("input: cannot open %s, will retry: %v", fo.path, err))
		}
		return false, nil
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = errors.New("is a directory")
	}
	if err != nil {
		f.Close()
		fo.logOnce(fmt.Sprintf("input: cannot read %s, will retry: %v", fo.path, err))
		return false, nil
	}
	fo.lastMsg = ""
	fo.f, fo.fi = f, fi
	ino := inodeOf(fi)
	saved := fo.saved
	fo.saved = nil
	resumed := false
	if atStart && saved != nil {
		off, lineNo, ok, why := resumeOffset(saved, fo.path, f, fi)
		if ok {
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				fo.closeFile()
				return false, fmt.Errorf("input: follow %s: %w", fo.path, err)
			}
			fo.sp.reset(f, fo.path, ino, off, lineNo)
			resumed = true
			fo.logf("input: resuming %s from the state in %s", fo.path, fo.opts.StateFile)
		} else {
			fo.logf("input: not resuming %s from the state in %s: %s; starting per follow.startAt", fo.path, fo.opts.StateFile, why)
		}
	}
	if resumed {
		// positioned above
	} else if atStart && fo.opts.StartAtEnd {
		if err := fo.skipToEnd(ctx, fi.Size(), ino); err != nil {
			fo.closeFile()
			return false, err
		}
	} else {
		fo.sp.reset(f, fo.path, ino, 0, 0)
	}
	fo.logf("input: following %s (inode %d) from offset %d, line %d", fo.path, ino, fo.sp.read, fo.sp.pos.LineNo+1)
	fo.markPosition()
	fo.saveState(true)
	return true, nil
}

// skipToEnd positions reading just after the last "\n" within the first size
// bytes, counting lines on the way so that LineNo stays true to the file.
func (fo *follower) skipToEnd(ctx context.Context, size int64, ino uint64) error {
	br := fo.sp.br // reuse the read buffer: no extra memory
	br.Reset(io.NewSectionReader(fo.f, 0, size))
	var read, lines, end int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk, err := br.ReadSlice('\n')
		read += int64(len(chunk))
		if err == nil {
			lines++
			end = read
			continue
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		return fmt.Errorf("input: follow %s: %w", fo.path, err)
	}
	if _, err := fo.f.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("input: follow %s: %w", fo.path, err)
	}
	fo.sp.reset(fo.f, fo.path, ino, end, lines)
	return nil
}

// truncated restarts reading at offset 0 of the same file (copytruncate).
func (fo *follower) truncated(size int64) error {
	if _, err := fo.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("input: follow %s: %w", fo.path, err)
	}
	if n := fo.sp.pending(); n > 0 {
		fo.logf("input: %s was truncated (size %d < offset %d); dropped a %d-byte partial line; reading from the start", fo.path, size, fo.sp.read, n)
	} else {
		fo.logf("input: %s was truncated (size %d < offset %d); reading from the start", fo.path, size, fo.sp.read)
	}
	fo.sp.reset(fo.f, fo.path, fo.sp.pos.Inode, 0, 0)
	fo.markPosition()
	return nil
}

// wait blocks until something may have changed: a relevant fsnotify event,
// a watcher error (e.g. overflow: a re-check recovers) or a poll tick.
func (fo *follower) wait(ctx context.Context, w *fsnotify.Watcher, tick *time.Ticker) error {
	var stateDue <-chan time.Time // a rate-limited state save is pending
	if fo.st != nil {
		if _, d := fo.st.due(time.Now()); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			stateDue = t.C
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stateDue:
			return nil
		case <-tick.C:
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("input: follow %s: fsnotify watcher closed", fo.path)
			}
			// While orphaned, the old file's events come under its new name.
			if fo.orphan || filepath.Clean(ev.Name) == fo.path {
				fo.drainEvents(w)
				return nil
			}
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("input: follow %s: fsnotify watcher closed", fo.path)
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				fo.logOnce(fmt.Sprintf("input: follow %s: watcher: %v", fo.path, err))
			}
			return nil
		}
	}
}

// drainEvents drops already-queued events: the next step re-checks
// everything anyway, so a burst of writes costs one step, not one per write.
func (fo *follower) drainEvents(w *fsnotify.Watcher) {
	for {
		select {
		case _, ok := <-w.Events:
			if !ok {
				return
			}
		default:
			return
		}
	}
}
