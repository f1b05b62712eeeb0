package spill

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockDir takes an exclusive flock on dir/spill.lock, retrying until
// timeout. The lock covers the directory, not only spill.db, so that a
// compaction can replace spill.db without another process slipping in
// between. flock locks belong to the open file: a second Open in the same
// process is refused too, and the kernel drops the lock when the process
// dies (kill -9 included).
func lockDir(dir string, timeout time.Duration) (*os.File, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("spill: directory %q is not writable: %w", dir, err)
		}
		return nil, fmt.Errorf("spill: creating lock file: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("spill: locking %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("spill: %w: %s is locked by another process (waited %v)", ErrLocked, path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func unlockDir(f *os.File) error {
	// Closing the file releases the lock.
	return f.Close()
}
