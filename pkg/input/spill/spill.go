// Package spill is triage's on-disk overflow for alerts: an append-only,
// crash-safe log bounded in bytes, read in order and trimmed from the head
// once its records were delivered. The webhook appends a request body that
// does not fit in the in-memory queue and answers 2xx only after Append
// returned, so an acknowledged alert survives a kill -9 of Falco; a Feeder
// moves records back into the queue in order and acks them once Falco got
// them (at-least-once).
//
// Storage is one go.etcd.io/bbolt file (spill.db) in the spill directory:
// a copy-on-write B+tree whose commit writes the changed pages, fdatasyncs,
// then writes one of two checksummed meta pages and fdatasyncs again. A
// process killed at any point leaves the previous or the new meta page
// valid, so a half-written transaction is never visible. Every record also
// carries its own CRC-32C (bbolt checksums only its meta pages), checked on
// every read: a record that fails is skipped, counted and logged, never
// returned and never blocking the records behind it.
//
// Layout: bucket "records" maps big-endian uint64 sequence numbers to
// [version byte 1][CRC-32C of data, big endian][data]; its bbolt bucket
// sequence is the last sequence number ever assigned, so numbers keep
// increasing across restarts and compactions. Bucket "meta" holds the
// format version and the stored byte and record counts, updated in the same
// transaction as the records.
package spill

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// File names inside the spill directory.
const (
	FileName    = "spill.db"         // the bbolt file
	LockName    = "spill.lock"       // flock'ed for the life of a Spill
	compactName = "spill.db.compact" // new file being built by a compaction
)

// RecordOverhead is what each record costs in Bytes() besides its data:
// the 8-byte key and the 5-byte header.
const RecordOverhead = 8 + headerLen

const (
	headerLen     = 5
	recordVersion = 1
	formatVersion = 1

	// DefaultLockTimeout bounds the wait for another process's lock.
	DefaultLockTimeout = time.Second
	// DefaultCompactAbove is the file size above which a spill that Ack
	// emptied is rewritten as a new, small file.
	DefaultCompactAbove = 16 << 20
)

var (
	bucketRecords = []byte("records")
	bucketMeta    = []byte("meta")
	keyFormat     = []byte("format")
	keyBytes      = []byte("bytes")
	keyCount      = []byte("count")

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Errors. Each error returned wraps one of these where it applies, with the
// path and the numbers in its text.
var (
	// ErrFull: the records do not fit in MaxBytes now; they may later,
	// once delivered records are acked.
	ErrFull = errors.New("spill is full")
	// ErrTooLarge: the records of one Append are larger than MaxBytes
	// and can never fit.
	ErrTooLarge = errors.New("records larger than the whole spill")
	// ErrLocked: another process (or another Spill in this one) holds the
	// spill directory.
	ErrLocked = errors.New("spill directory is in use")
	// ErrCorrupt: the spill file cannot be read as a spill. Move it aside
	// to start with an empty spill; its records are then lost.
	ErrCorrupt = errors.New("spill file is corrupt")
	// ErrClosed: the Spill was closed (or a compaction failed to reopen it).
	ErrClosed = errors.New("spill is closed")
)

// SyncPolicy says when an Append is durable.
type SyncPolicy string

const (
	// SyncAlways: Append returns once its records are on stable storage
	// (bbolt's commit: write pages, fdatasync, write meta, fdatasync).
	// Appends that arrive while a commit is in flight share the next one
	// (group commit), so concurrent writers do not pay one fsync each and a
	// lone writer waits for no timer. The default.
	SyncAlways SyncPolicy = "always"
	// SyncNone: no fdatasync. Append returns once its records are written
	// to the file with pwrite, i.e. in the kernel's page cache: they
	// survive a kill -9 of the process (the kernel writes them out later),
	// but a power failure or kernel crash may lose the latest appends and,
	// because pages then reach the disk in any order, may leave a file that
	// Open refuses as corrupt. For tests and benchmarks, or disposable
	// spills on tmpfs.
	SyncNone SyncPolicy = "none"
)

// ParseSync reads a sync policy name; "" is SyncAlways.
func ParseSync(s string) (SyncPolicy, error) {
	switch SyncPolicy(s) {
	case "", SyncAlways:
		return SyncAlways, nil
	case SyncNone:
		return SyncNone, nil
	}
	return "", fmt.Errorf("spill: unknown sync policy %q (always, none)", s)
}

// Options configure Open.
type Options struct {
	// MaxBytes bounds Bytes(): the data of the stored records plus
	// RecordOverhead each. Required, > 0.
	MaxBytes int64
	// Sync is the durability policy; "" is SyncAlways.
	Sync SyncPolicy
	// LockTimeout bounds the wait for a directory held by another process
	// (0: DefaultLockTimeout). Open never waits longer.
	LockTimeout time.Duration
	// CompactAbove: when an Ack leaves the spill empty and the file is
	// larger than this, the file is replaced by a new, empty one (0:
	// DefaultCompactAbove; negative: never).
	CompactAbove int64
	// Logf receives log lines (corrupt records, compactions); nil drops them.
	Logf func(format string, args ...any)
}

// Record is one stored record.
type Record struct {
	Seq  uint64
	Data []byte
}

// Spill is an open spill directory. Safe for concurrent use.
type Spill struct {
	dir, path string
	opts      Options
	lock      *os.File

	// mu guards db: read-locked by every operation, write-locked to swap
	// the file (compaction) or close it.
	mu sync.RWMutex
	db *bolt.DB

	count   atomic.Int64
	bytes   atomic.Int64
	lastSeq atomic.Uint64
	corrupt atomic.Uint64

	// group commit (see Append)
	gmu        sync.Mutex
	committing bool
	pending    []*appendReq
}

// Open opens (or creates) the spill in dir. dir itself is created (0700)
// when missing, its parent must exist. The file is created 0600. Open fails
// with a clear error, never hangs: a missing parent, a path that is not a
// directory, a directory that is not writable, one in use by another
// process (ErrLocked, after at most LockTimeout), a file that is not a
// readable spill (ErrCorrupt).
func Open(dir string, opts Options) (_ *Spill, err error) {
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("spill: maxBytes must be > 0, got %d", opts.MaxBytes)
	}
	if opts.Sync, err = ParseSync(string(opts.Sync)); err != nil {
		return nil, err
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.CompactAbove == 0 {
		opts.CompactAbove = DefaultCompactAbove
	}
	if dir == "" {
		return nil, errors.New("spill: no directory given")
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	s := &Spill{dir: dir, path: filepath.Join(dir, FileName), opts: opts, lock: lock}
	defer func() {
		if err != nil {
			s.closeFiles()
		}
	}()
	// A compaction killed before its rename leaves its new file behind;
	// the old file is still the spill.
	if err := os.Remove(filepath.Join(dir, compactName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("spill: removing leftover %s: %w", compactName, err)
	}
	if s.db, err = s.openDB(s.path); err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("spill: directory %q does not exist and its parent is missing: %w", dir, err)
			}
			return fmt.Errorf("spill: cannot create directory %q: %w", dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("spill: directory %q: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("spill: %q is not a directory", dir)
	}
	return nil
}

func (s *Spill) boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout: s.opts.LockTimeout,
		NoSync:  s.opts.Sync == SyncNone,
		// The freelist is written with every commit. Not syncing it
		// (etcd's choice) makes Open rebuild it by walking the tree in a
		// goroutine that panics on a corrupt page, which would abort
		// Falco; reading a synced freelist fails in Open's own goroutine,
		// where it is recovered and reported as ErrCorrupt.
		NoFreelistSync: false,
		FreelistType:   bolt.FreelistMapType,
	}
}

func (s *Spill) openDB(path string) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("spill: %w: %s: %v", ErrCorrupt, path, p)
		}
	}()
	db, err = bolt.Open(path, 0o600, s.boltOptions())
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("spill: %w: %s is locked by another process (waited %v)", ErrLocked, path, s.opts.LockTimeout)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, fmt.Errorf("spill: %w: %s: %v (move it aside to start with an empty spill)", ErrCorrupt, path, err)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("spill: %s is not writable: %w", path, err)
	}
	return nil, fmt.Errorf("spill: opening %s: %w", path, err)
}

// load creates the buckets of a new file, checks those of an existing one
// and loads the counters.
func (s *Spill) load() error {
	return s.update(func(tx *bolt.Tx) error {
		recs, meta := tx.Bucket(bucketRecords), tx.Bucket(bucketMeta)
		if recs == nil && meta == nil {
			if c := tx.Cursor(); func() bool { k, _ := c.First(); return k != nil }() {
				return fmt.Errorf("spill: %w: %s is a bbolt file but not a spill", ErrCorrupt, s.path)
			}
			var err error
			if recs, err = tx.CreateBucket(bucketRecords); err != nil {
				return err
			}
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyFormat, u64(formatVersion)); err != nil {
				return err
			}
			if err := putCounts(meta, 0, 0); err != nil {
				return err
			}
		}
		if recs == nil || meta == nil {
			return fmt.Errorf("spill: %w: %s lacks the records or meta bucket", ErrCorrupt, s.path)
		}
		if f := meta.Get(keyFormat); len(f) != 8 || binary.BigEndian.Uint64(f) != formatVersion {
			return fmt.Errorf("spill: %w: %s has an unknown format version %x (this build reads %d)", ErrCorrupt, s.path, f, formatVersion)
		}
		b, n := getCounts(meta)
		s.bytes.Store(b)
		s.count.Store(n)
		s.lastSeq.Store(recs.Sequence())
		return nil
	})
}

// update runs fn in a write transaction, turning a bbolt panic (a corrupt
// page) into ErrCorrupt.
func (s *Spill) update(fn func(tx *bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("spill: %w: %s: %v", ErrCorrupt, s.path, p)
		}
	}()
	return s.db.Update(fn)
}

func (s *Spill) view(fn func(tx *bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("spill: %w: %s: %v", ErrCorrupt, s.path, p)
		}
	}()
	return s.db.View(fn)
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func putCounts(meta *bolt.Bucket, b, n int64) error {
	if err := meta.Put(keyBytes, u64(uint64(b))); err != nil {
		return err
	}
	return meta.Put(keyCount, u64(uint64(n)))
}

func getCounts(meta *bolt.Bucket) (b, n int64) {
	if v := meta.Get(keyBytes); len(v) == 8 {
		b = int64(binary.BigEndian.Uint64(v))
	}
	if v := meta.Get(keyCount); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	return b, n
}

func encode(data []byte) []byte {
	v := make([]byte, headerLen+len(data))
	v[0] = recordVersion
	binary.BigEndian.PutUint32(v[1:5], crc32.Checksum(data, castagnoli))
	copy(v[headerLen:], data)
	return v
}

// decode checks a stored value and returns its data (aliasing v).
func decode(v []byte) ([]byte, error) {
	if len(v) < headerLen {
		return nil, fmt.Errorf("record of %d bytes is shorter than its header", len(v))
	}
	if v[0] != recordVersion {
		return nil, fmt.Errorf("unknown record version %d", v[0])
	}
	data := v[headerLen:]
	if want, got := binary.BigEndian.Uint32(v[1:5]), crc32.Checksum(data, castagnoli); want != got {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	return data, nil
}

func (s *Spill) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// Dir returns the spill directory.
func (s *Spill) Dir() string { return s.dir }

// Len returns the number of stored records (acked ones excluded).
func (s *Spill) Len() int { return int(s.count.Load()) }

// Bytes returns the stored bytes: data plus RecordOverhead per record.
func (s *Spill) Bytes() int64 { return s.bytes.Load() }

// MaxBytes returns the bound on Bytes.
func (s *Spill) MaxBytes() int64 { return s.opts.MaxBytes }

// LastSeq returns the last sequence number ever assigned (0: none yet).
func (s *Spill) LastSeq() uint64 { return s.lastSeq.Load() }

// Corrupt returns how many corrupt or unknown records reads have skipped
// since Open (a record read twice counts twice).
func (s *Spill) Corrupt() uint64 { return s.corrupt.Load() }

// FileSize returns the size of the spill file on disk.
func (s *Spill) FileSize() (int64, error) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Append stores records, in order, under consecutive sequence numbers, all
// of them or none, and returns the first and last. When it returns nil the
// records are durable per the sync policy (SyncAlways: on stable storage;
// SyncNone: in the page cache, surviving a kill -9). It returns an error
// wrapping ErrFull when they do not fit in MaxBytes now, ErrTooLarge when
// they never can. An empty Append returns (0, 0, nil) and stores nothing.
//
// Concurrent Appends are grouped: the first caller commits at once, the
// callers arriving during its commit share the next commit (one fsync for
// all of them), each keeping its all-or-nothing and its order. Records of
// different callers are stored in the order the callers arrived.
func (s *Spill) Append(records [][]byte) (firstSeq, lastSeq uint64, err error) {
	if len(records) == 0 {
		return 0, 0, nil
	}
	var size int64
	for _, r := range records {
		size += int64(len(r)) + RecordOverhead
	}
	if size > s.opts.MaxBytes {
		return 0, 0, fmt.Errorf("spill: %w: %d records of %d bytes, maxBytes is %d", ErrTooLarge, len(records), size, s.opts.MaxBytes)
	}
	r := &appendReq{records: records, size: size, wake: make(chan bool, 1)}
	s.group(r)
	return r.first, r.last, r.err
}

// Next returns up to max records with sequence numbers above afterSeq, in
// order, their data totalling at most maxBytes (at least one record is
// returned whatever its size; maxBytes <= 0 means no byte bound). It does
// not remove them. last is the highest sequence number examined, corrupt
// records included: pass it as the next afterSeq. Corrupt or unknown
// records are skipped, counted (Corrupt) and logged; Ack removes them with
// the rest.
func (s *Spill) Next(afterSeq uint64, max int, maxBytes int) (recs []Record, last uint64, err error) {
	if max <= 0 {
		return nil, afterSeq, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, afterSeq, ErrClosed
	}
	last = afterSeq
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		if b == nil {
			return fmt.Errorf("spill: %w: records bucket missing", ErrCorrupt)
		}
		c := b.Cursor()
		total := 0
		for k, v := c.Seek(u64(afterSeq + 1)); k != nil && len(recs) < max; k, v = c.Next() {
			if len(k) != 8 {
				s.corrupt.Add(1)
				s.logf("spill: skipping a record with a %d-byte key (%x)", len(k), k)
				continue
			}
			seq := binary.BigEndian.Uint64(k)
			data, derr := decode(v)
			if derr != nil {
				s.corrupt.Add(1)
				s.logf("spill: skipping corrupt record %d: %v", seq, derr)
				last = seq
				continue
			}
			if maxBytes > 0 && len(recs) > 0 && total+len(data) > maxBytes {
				break
			}
			total += len(data)
			recs = append(recs, Record{Seq: seq, Data: bytes.Clone(data)})
			last = seq
		}
		return nil
	})
	if err != nil {
		return nil, afterSeq, err
	}
	return recs, last, nil
}

// Ack deletes every record with a sequence number <= uptoSeq, durably per
// the sync policy. Acking what is already gone is a no-op. When it leaves
// the spill empty and the file is over CompactAbove, the file is replaced
// by a new, empty one keeping the sequence (see compact).
func (s *Spill) Ack(uptoSeq uint64) error {
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return ErrClosed
	}
	var dBytes, dCount int64
	var empty bool
	err := s.update(func(tx *bolt.Tx) error {
		dBytes, dCount = 0, 0
		b, meta := tx.Bucket(bucketRecords), tx.Bucket(bucketMeta)
		// Collect the keys first, then delete: bbolt's cursor may skip a
		// key when Next follows Delete, and re-seeking First after each
		// Delete walks over the emptied leaves again (quadratic).
		c := b.Cursor()
		var keys [][]byte
		for k, v := c.First(); k != nil && len(k) == 8 && binary.BigEndian.Uint64(k) <= uptoSeq; k, v = c.Next() {
			keys = append(keys, bytes.Clone(k))
			dBytes += int64(len(v)) + 8
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		dCount = int64(len(keys))
		if dCount == 0 {
			return nil
		}
		b0, n0 := getCounts(meta)
		nb, nn := max(b0-dBytes, 0), max(n0-dCount, 0)
		if k, _ := c.First(); k == nil {
			nb, nn = 0, 0 // exact whatever happened before
		}
		empty = nn == 0
		return putCounts(meta, nb, nn)
	})
	if err == nil && dCount > 0 {
		s.bytes.Add(-dBytes)
		s.count.Add(-dCount)
		if empty {
			s.bytes.Store(0)
			s.count.Store(0)
		}
	}
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	if empty && s.opts.CompactAbove > 0 {
		if sz, serr := s.FileSize(); serr == nil && sz > s.opts.CompactAbove {
			return s.compact()
		}
	}
	return nil
}

// Close closes the spill. Records not acked stay for the next Open.
func (s *Spill) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeFiles()
}

func (s *Spill) closeFiles() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	if s.lock != nil {
		if e := unlockDir(s.lock); err == nil {
			err = e
		}
		s.lock = nil
	}
	return err
}

// compact replaces an empty spill file by a new one holding only the
// sequence number, so a burst does not leave a large file behind. bbolt
// reuses freed pages but never shrinks its file. Crash-safe: the new file
// is built and synced under another name, then renamed over the old one
// and the directory synced; a crash before the rename leaves the old
// (empty) file, whose leftover companion Open removes.
func (s *Spill) compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	if s.count.Load() != 0 { // an Append came in between
		return nil
	}
	before, _ := s.FileSize()
	seq := s.lastSeq.Load()
	tmp := filepath.Join(s.dir, compactName)
	_ = os.Remove(tmp)
	ndb, err := s.openDB(tmp)
	if err != nil {
		return err
	}
	err = ndb.Update(func(tx *bolt.Tx) error {
		recs, err := tx.CreateBucket(bucketRecords)
		if err != nil {
			return err
		}
		if err := recs.SetSequence(seq); err != nil {
			return err
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyFormat, u64(formatVersion)); err != nil {
			return err
		}
		return putCounts(meta, 0, 0)
	})
	if cerr := ndb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("spill: compaction: %w", err)
	}
	if err := s.db.Close(); err != nil {
		s.logf("spill: compaction: closing the old file: %v", err)
	}
	s.db = nil
	if err := os.Rename(tmp, s.path); err != nil {
		_ = os.Remove(tmp)
		return s.reopenAfter(fmt.Errorf("spill: compaction: %w", err))
	}
	if err := syncDir(s.dir); err != nil {
		s.logf("spill: compaction: syncing directory: %v", err)
	}
	if err := s.reopenAfter(nil); err != nil {
		return err
	}
	after, _ := s.FileSize()
	s.logf("spill: empty, file compacted from %d to %d bytes", before, after)
	return nil
}

// reopenAfter reopens s.path after a compaction step; cause is returned
// when the reopen works, the reopen error otherwise (the spill is then
// closed: every call returns ErrClosed).
func (s *Spill) reopenAfter(cause error) error {
	db, err := s.openDB(s.path)
	if err != nil {
		s.logf("spill: reopening %s after compaction failed, spill closed: %v", s.path, err)
		return err
	}
	s.db = db
	return cause
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
