package file

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Follow state: where reading of a followed file got to, so that a restart
// (after a crash too) resumes there instead of at follow.startAt.
//
// The state names the file by path and inode and records the offset just
// after the last delivered line (see Delivery: with a sink that queues
// through it, delivered means handed to Falco; otherwise emit returned
// nil), lines never queued (malformed, oversize, loop-dropped) counting as
// delivered once every earlier line is. It also records a fingerprint of the bytes before that offset,
// so that a file replaced or truncated and regrown while triage was down
// (same path, maybe even a recycled inode, size past the offset) is not
// mistaken for the one the state was taken from.
//
// Saving is periodic (every stateSaveEvery, by a goroutine of its own, so
// a follower blocked on a full queue still saves what was delivered) and
// atomic (temporary file in the same directory, fsync, rename): a crash
// leaves either the old or the new state, never a torn one. Lines after
// the last saved offset may thus be handed on again after a crash
// (at-least-once); none before it is.

// stateSaveEvery is the period of the state saver.
const stateSaveEvery = 100 * time.Millisecond

// stateFingerprintBytes is how many bytes before the offset are hashed.
const stateFingerprintBytes = 256

const stateVersion = 1

type followState struct {
	Version     int    `json:"version"`
	Path        string `json:"path"`
	Inode       uint64 `json:"inode"`
	Offset      int64  `json:"offset"`
	LineNo      int64  `json:"line"`
	Fingerprint string `json:"fingerprint"` // hex SHA-256 of the bytes [max(0, offset-256), offset)
}

// fingerprint hashes the stateFingerprintBytes bytes of f before offset.
func fingerprint(f io.ReaderAt, offset int64) (string, error) {
	start := max(0, offset-stateFingerprintBytes)
	buf := make([]byte, offset-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), nil
}

// loadState reads a state file. A missing file is (nil, nil).
func loadState(name string) (*followState, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st followState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt: %v", name, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state file %s has version %d, this build reads %d", name, st.Version, stateVersion)
	}
	if st.Offset < 0 || st.LineNo < 0 {
		return nil, fmt.Errorf("state file %s is corrupt: negative offset or line", name)
	}
	return &st, nil
}

// saveState writes st atomically: a crash at any point leaves the previous
// or the new content under name.
func saveState(name string, st *followState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return err
	}
	ok = true
	return nil
}

// stateTracker saves positions to the state file.
type stateTracker struct {
	file   string
	saved  mark // the delivered mark last saved
	any    bool // saved is set
	failed bool // last save failed (logged once per failure streak)
	saves  int  // successful saves, for tests
	logf   func(string, ...any)
}

// save writes pos, read from r (the file pos refers to, for the
// fingerprint), as the state; m is the delivered mark it stands for. It
// writes nothing when r is shorter than pos.Offset: the file was truncated
// under it and the follower will start a new generation.
func (s *stateTracker) save(m mark, pos LinePos, r *os.File) {
	if s.any && s.saved == m {
		return
	}
	var err error
	if fi, serr := r.Stat(); serr != nil {
		err = serr
	} else if fi.Size() < pos.Offset {
		return
	}
	var fp string
	if err == nil {
		fp, err = fingerprint(r, pos.Offset)
	}
	if err == nil {
		err = saveState(s.file, &followState{
			Version: stateVersion, Path: pos.Path, Inode: pos.Inode,
			Offset: pos.Offset, LineNo: pos.LineNo, Fingerprint: fp,
		})
	}
	if err != nil {
		if !s.failed {
			s.logf("input: cannot save follow state to %s (will retry; a restart may then repeat lines): %v", s.file, err)
		}
		s.failed = true
		return
	}
	if s.failed {
		s.logf("input: follow state saved to %s again", s.file)
	}
	s.failed = false
	s.saved, s.any = m, true
	s.saves++
}

// resumeOffset checks a loaded state against the file just opened and
// returns where to resume, or ok=false (with the reason) to start per
// startAt.
func resumeOffset(st *followState, path string, f *os.File, fi os.FileInfo) (offset, lineNo int64, ok bool, why string) {
	switch {
	case st.Path != path:
		return 0, 0, false, fmt.Sprintf("it is for %s", st.Path)
	case st.Inode != inodeOf(fi):
		return 0, 0, false, fmt.Sprintf("it is for inode %d, the file is now inode %d (rotated while stopped)", st.Inode, inodeOf(fi))
	case fi.Size() < st.Offset:
		return 0, 0, false, fmt.Sprintf("the file is shorter (%d bytes) than the saved offset %d (truncated while stopped)", fi.Size(), st.Offset)
	}
	fp, err := fingerprint(f, st.Offset)
	if err != nil {
		return 0, 0, false, fmt.Sprintf("cannot read the file: %v", err)
	}
	if fp != st.Fingerprint {
		return 0, 0, false, "the bytes before the saved offset changed (the file was rewritten while stopped)"
	}
	return st.Offset, st.LineNo, true, ""
}
