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
	"sync"
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
	// StateFile, when set, records the followed file's inode and the offset after the last delivered
	// line (see Delivery), every 100 ms while it moves, at open and when Follow returns; at start,
	// reading resumes there if the state matches the file, or the file it was rotated to in the same
	// directory (see state.go). Empty: no state.
	StateFile string
	// Delivery, with StateFile, is the tracker the sink queues lines through (Delivery.Queue) and
	// the queue acks (Delivery.Ack). Nil: a line counts as delivered once emit returned.
	Delivery *Delivery
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
	defer fo.closeAll()
	if opts.StateFile != "" {
		fo.initState()
		saverCtx, stopSaver := context.WithCancel(ctx)
		saverDone := make(chan struct{})
		go fo.saveLoop(saverCtx, saverDone)
		defer func() { // runs before closeAll: the files are still open for the fingerprint
			stopSaver()
			<-saverDone
			fo.saveState()
		}()
	}

	tick := time.NewTicker(opts.PollInterval)
	defer tick.Stop()
	for {
		if err := fo.step(ctx); err != nil {
			return err
		}
		if err := fo.wait(ctx, w, tick); err != nil {
			return err
		}
	}
}

// initState loads the state file and wraps emit and oversize so that every
// handled line reaches the delivery tracker.
func (fo *follower) initState() {
	fo.st = &stateTracker{file: fo.opts.StateFile, logf: fo.logf}
	fo.d = fo.opts.Delivery
	if fo.d == nil {
		fo.d = NewDelivery()
	}
	fo.gens = map[uint64]*generation{}
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
		fo.d.handled(pos)
		return nil
	}
	fo.oversize = func(pos LinePos, length int64) {
		if oversize != nil {
			oversize(pos, length)
		}
		fo.d.handled(pos)
	}
}

// generation is one stretch of reading: a file from its open, or after a
// truncation, to the next. Its file stays open while the delivered
// position is in it, so the state can fingerprint it after a rotation; f
// is nil once its content is gone (truncated).
type generation struct {
	start LinePos
	f     *os.File
}

// maxRetired bounds the rotated-away files held open for the state.
const maxRetired = 8

// newGeneration starts a generation at the splitter's position in fo.f
// and records that position as handled (so that a restart resumes where
// this run started, not per startAt again). truncated says the current
// generation's content is gone (it shares its file with the new one).
func (fo *follower) newGeneration(truncated bool) {
	if fo.st == nil {
		return
	}
	fo.mu.Lock()
	if truncated {
		if g := fo.gens[fo.gen]; g != nil {
			g.f = nil // shared with the new generation; its old content is gone
		}
	}
	fo.gen = fo.d.newGeneration()
	fo.gens[fo.gen] = &generation{start: fo.sp.pos, f: fo.f}
	fo.mu.Unlock()
	fo.d.handled(fo.sp.pos)
}

// retireFile forgets the current file at rotation. With a state its handle
// stays with its generation until the delivered position leaves it.
func (fo *follower) retireFile() {
	if fo.st == nil {
		fo.closeFile()
		return
	}
	fo.mu.Lock()
	fo.f, fo.fi = nil, nil
	retired := 0
	for g := fo.gen; g > 0; g-- { // newest first; drop the oldest beyond maxRetired
		if gi := fo.gens[g]; gi != nil && gi.f != nil {
			if retired++; retired > maxRetired {
				gi.f.Close()
				gi.f = nil
			}
		}
	}
	fo.mu.Unlock()
}

func (fo *follower) saveLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(stateSaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fo.saveState()
		}
	}
}

// saveState writes the delivered position if it changed since the last
// save. A delivered position in a generation whose content is gone
// (truncated since) cannot be fingerprinted and nothing after it in that
// content can be read again: the start of the next readable generation is
// saved instead, which covers nothing undelivered that still exists.
// Generations before the delivered one are dropped and their files closed.
func (fo *follower) saveState() {
	if fo.st == nil {
		return
	}
	m, ok := fo.d.deliveredMark()
	if !ok {
		return
	}
	fo.mu.Lock()
	defer fo.mu.Unlock()
	for g, gi := range fo.gens {
		if g < m.gen {
			if gi.f != nil && gi.f != fo.f {
				gi.f.Close()
			}
			delete(fo.gens, g)
		}
	}
	pos := m.pos
	var r *os.File
	for g := m.gen; g <= fo.gen; g++ {
		gi := fo.gens[g]
		if gi == nil || gi.f == nil {
			continue
		}
		if g != m.gen {
			pos = gi.start
		}
		r = gi.f
		break
	}
	if r != nil {
		fo.st.save(m, pos, r)
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

	// With a state file: the delivery tracker and the reading generations
	// (gens and gen guarded by mu, shared with the saver goroutine).
	d    *Delivery
	mu   sync.Mutex
	gen  uint64
	gens map[uint64]*generation
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

// closeAll closes the current file and every retired one.
func (fo *follower) closeAll() {
	fo.mu.Lock()
	for g, gi := range fo.gens {
		if gi.f != nil && gi.f != fo.f {
			gi.f.Close()
		}
		delete(fo.gens, g)
	}
	fo.mu.Unlock()
	fo.closeFile()
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
			fo.retireFile()
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
		if !ok && saved.Path == fo.path && saved.Inode != ino {
			// Rotated while stopped, or before the delivered position left
			// the old file: finish the old file first if it is still in the
			// directory; step then switches to path as after any rotation.
			if rf, rfi, name := findRotated(saved, fi); rf != nil {
				f.Close()
				f, fi, ino = rf, rfi, inodeOf(rfi)
				fo.f, fo.fi = f, fi
				off, lineNo, ok = saved.Offset, saved.LineNo, true
				fo.logf("input: %s was rotated to %s since the state was saved; reading the rest of %s first", fo.path, name, name)
			}
		}
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
	fo.newGeneration(false)
	fo.saveState()
	return true, nil
}

// findRotated looks in the followed file's directory for the file the
// state names (its inode, at least as long as the offset, the same bytes
// before it), other than current: where a rotation renamed it.
func findRotated(st *followState, current os.FileInfo) (*os.File, os.FileInfo, string) {
	dir := filepath.Dir(st.Path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, ""
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || inodeOf(info) != st.Inode || os.SameFile(info, current) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err == nil && os.SameFile(fi, info) && fi.Size() >= st.Offset {
			if fp, err := fingerprint(f, st.Offset); err == nil && fp == st.Fingerprint {
				return f, fi, name
			}
		}
		f.Close()
	}
	return nil, nil, ""
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
	fo.newGeneration(true)
	return nil
}

// wait blocks until something may have changed: a relevant fsnotify event,
// a watcher error (e.g. overflow: a re-check recovers) or a poll tick.
func (fo *follower) wait(ctx context.Context, w *fsnotify.Watcher, tick *time.Ticker) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
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
