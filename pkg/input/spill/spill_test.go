package spill

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func open(t testing.TB, dir string, opts Options) *Spill {
	t.Helper()
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.Sync == "" {
		opts.Sync = SyncNone // fast; the crash test covers SyncAlways
	}
	s, err := Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func recs(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf(`{"rule":"%s-%d"}`, prefix, i))
	}
	return out
}

func all(t testing.TB, s *Spill) []Record {
	t.Helper()
	got, _, err := s.Next(0, 1<<30, 0)
	require.NoError(t, err)
	return got
}

func datas(rs []Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Data)
	}
	return out
}

func strs(b [][]byte) []string {
	out := make([]string, len(b))
	for i, r := range b {
		out[i] = string(r)
	}
	return out
}

func TestAppendNextOrder(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	a, b := recs("a", 3), recs("b", 2)
	f, l, err := s.Append(a)
	require.NoError(t, err)
	require.Equal(t, [2]uint64{1, 3}, [2]uint64{f, l})
	f, l, err = s.Append(b)
	require.NoError(t, err)
	require.Equal(t, [2]uint64{4, 5}, [2]uint64{f, l})

	got := all(t, s)
	require.Equal(t, append(strs(a), strs(b)...), datas(got))
	for i, r := range got {
		require.Equal(t, uint64(i+1), r.Seq)
	}
	require.Equal(t, 5, s.Len())

	// Paging: max and afterSeq.
	page, last, err := s.Next(2, 2, 0)
	require.NoError(t, err)
	require.Equal(t, uint64(4), last)
	require.Equal(t, []uint64{3, 4}, []uint64{page[0].Seq, page[1].Seq})
	page, last, err = s.Next(5, 10, 0)
	require.NoError(t, err)
	require.Empty(t, page)
	require.Equal(t, uint64(5), last)

	// Empty Append stores nothing.
	f, l, err = s.Append(nil)
	require.NoError(t, err)
	require.Zero(t, f+l)
	require.Equal(t, 5, s.Len())
}

func TestNextMaxBytes(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	_, _, err := s.Append([][]byte{bytes.Repeat([]byte("x"), 100), bytes.Repeat([]byte("y"), 100), bytes.Repeat([]byte("z"), 100)})
	require.NoError(t, err)
	got, last, err := s.Next(0, 10, 250)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, uint64(2), last)
	// At least one record, whatever its size.
	got, _, err = s.Next(0, 10, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
}

func TestMaxBytesFullAndAllOrNothing(t *testing.T) {
	rec := bytes.Repeat([]byte("r"), 87) // 100 bytes stored with the overhead
	require.Equal(t, 13, RecordOverhead)
	s := open(t, t.TempDir(), Options{MaxBytes: 1000})

	_, _, err := s.Append([][]byte{rec, rec, rec, rec, rec, rec, rec})
	require.NoError(t, err)
	require.Equal(t, int64(700), s.Bytes())

	// 4 more do not fit: none is stored.
	_, _, err = s.Append([][]byte{rec, rec, rec, rec})
	require.ErrorIs(t, err, ErrFull)
	require.Contains(t, err.Error(), "maxBytes is 1000")
	require.Equal(t, 7, s.Len())
	require.Equal(t, int64(700), s.Bytes())

	// 3 fit exactly.
	f, l, err := s.Append([][]byte{rec, rec, rec})
	require.NoError(t, err)
	require.Equal(t, [2]uint64{8, 10}, [2]uint64{f, l})
	require.Equal(t, int64(1000), s.Bytes())
	_, _, err = s.Append([][]byte{{}})
	require.ErrorIs(t, err, ErrFull)

	// More than the whole spill can ever hold.
	_, _, err = s.Append([][]byte{bytes.Repeat([]byte("r"), 1000)})
	require.ErrorIs(t, err, ErrTooLarge)
	require.False(t, errors.Is(err, ErrFull))

	// Ack frees room; the sequence goes on.
	require.NoError(t, s.Ack(4))
	require.Equal(t, int64(600), s.Bytes())
	f, l, err = s.Append([][]byte{rec, rec, rec, rec})
	require.NoError(t, err)
	require.Equal(t, [2]uint64{11, 14}, [2]uint64{f, l})
	require.Len(t, all(t, s), 10)
}

func TestAck(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	_, _, err := s.Append(recs("a", 10))
	require.NoError(t, err)
	require.NoError(t, s.Ack(0)) // nothing
	require.Equal(t, 10, s.Len())
	require.NoError(t, s.Ack(3))
	got := all(t, s)
	require.Equal(t, uint64(4), got[0].Seq)
	require.Equal(t, 7, s.Len())
	require.NoError(t, s.Ack(3)) // again: no-op
	require.Equal(t, 7, s.Len())
	require.NoError(t, s.Ack(100)) // beyond the last
	require.Zero(t, s.Len())
	require.Zero(t, s.Bytes())
	f, _, err := s.Append(recs("b", 1))
	require.NoError(t, err)
	require.Equal(t, uint64(11), f, "sequence continues after the spill emptied")
}

func TestReopenKeepsRecordsSequenceAndBytes(t *testing.T) {
	dir := t.TempDir()
	for _, pol := range []SyncPolicy{SyncAlways, SyncNone} {
		t.Run(string(pol), func(t *testing.T) {
			dir := filepath.Join(dir, string(pol))
			s, err := Open(dir, Options{MaxBytes: 1 << 20, Sync: pol})
			require.NoError(t, err)
			_, _, err = s.Append(recs("a", 5))
			require.NoError(t, err)
			_, _, err = s.Append(recs("b", 5))
			require.NoError(t, err)
			require.NoError(t, s.Ack(2))
			wantBytes, wantLen := s.Bytes(), s.Len()
			want := datas(all(t, s))
			require.NoError(t, s.Close())

			s, err = Open(dir, Options{MaxBytes: 1 << 20, Sync: pol})
			require.NoError(t, err)
			require.Equal(t, wantBytes, s.Bytes())
			require.Equal(t, wantLen, s.Len())
			require.Equal(t, uint64(10), s.LastSeq())
			got := all(t, s)
			require.Equal(t, want, datas(got))
			require.Equal(t, uint64(3), got[0].Seq)
			f, _, err := s.Append(recs("c", 1))
			require.NoError(t, err)
			require.Equal(t, uint64(11), f)

			// Emptied, closed, reopened: the sequence still goes on.
			require.NoError(t, s.Ack(11))
			require.NoError(t, s.Close())
			s, err = Open(dir, Options{MaxBytes: 1 << 20, Sync: pol})
			require.NoError(t, err)
			defer s.Close()
			require.Zero(t, s.Len())
			require.Zero(t, s.Bytes())
			f, _, err = s.Append(recs("d", 1))
			require.NoError(t, err)
			require.Equal(t, uint64(12), f)
		})
	}
}

// Concurrent Appends share commits; each keeps its records together and in
// order, and sequence numbers are unique and dense.
func TestConcurrentAppends(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncAlways, SyncNone} {
		t.Run(string(pol), func(t *testing.T) {
			s := open(t, t.TempDir(), Options{Sync: pol})
			const writers, per = 8, 25
			type span struct {
				w, i int
				f, l uint64
			}
			var mu sync.Mutex
			var spans []span
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						n := 1 + (w+i)%4
						f, l, err := s.Append(recs(fmt.Sprintf("w%d-i%d", w, i), n))
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						spans = append(spans, span{w, i, f, l})
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			got := all(t, s)
			bySeq := map[uint64]string{}
			for i, r := range got {
				require.Equal(t, uint64(i+1), r.Seq, "dense sequence")
				bySeq[r.Seq] = string(r.Data)
			}
			total := 0
			for _, sp := range spans {
				want := strs(recs(fmt.Sprintf("w%d-i%d", sp.w, sp.i), 1+(sp.w+sp.i)%4))
				require.Equal(t, uint64(len(want)), sp.l-sp.f+1)
				for j, wnt := range want {
					require.Equal(t, wnt, bySeq[sp.f+uint64(j)])
				}
				total += len(want)
			}
			require.Equal(t, total, len(got))
			require.Equal(t, total, s.Len())
		})
	}
}

func TestCorruptRecordSkipped(t *testing.T) {
	var logs []string
	var lmu sync.Mutex
	s := open(t, t.TempDir(), Options{Logf: func(f string, a ...any) {
		lmu.Lock()
		logs = append(logs, fmt.Sprintf(f, a...))
		lmu.Unlock()
	}})
	_, _, err := s.Append(recs("a", 5))
	require.NoError(t, err)
	// Damage record 2's data and give record 4 an unknown version.
	require.NoError(t, s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		v2 := bytes.Clone(b.Get(u64(2)))
		v2[len(v2)-1] ^= 0x40
		v4 := bytes.Clone(b.Get(u64(4)))
		v4[0] = 9
		if err := b.Put(u64(2), v2); err != nil {
			return err
		}
		return b.Put(u64(4), v4)
	}))
	got, last, err := s.Next(0, 10, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 3, 5}, []uint64{got[0].Seq, got[1].Seq, got[2].Seq})
	require.Equal(t, uint64(5), last)
	require.Equal(t, uint64(2), s.Corrupt())
	require.Len(t, logs, 2)
	require.Contains(t, logs[0], "skipping corrupt record 2: checksum mismatch")
	require.Contains(t, logs[1], "skipping corrupt record 4: unknown record version 9")

	// A trailing corrupt record still moves last on.
	got, last, err = s.Next(3, 1, 0)
	require.NoError(t, err)
	require.Equal(t, uint64(5), got[0].Seq)
	require.Equal(t, uint64(5), last)

	// Ack removes them with the rest, and the accounting ends at zero.
	require.NoError(t, s.Ack(5))
	require.Zero(t, s.Len())
	require.Zero(t, s.Bytes())
}

func TestOpenErrors(t *testing.T) {
	base := t.TempDir()

	_, err := Open(filepath.Join(base, "no", "such"), Options{MaxBytes: 1})
	require.ErrorContains(t, err, "parent is missing")

	f := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(f, nil, 0o600))
	_, err = Open(f, Options{MaxBytes: 1})
	require.ErrorContains(t, err, "is not a directory")

	_, err = Open(filepath.Join(base, "x"), Options{})
	require.ErrorContains(t, err, "maxBytes must be > 0")
	_, err = Open(filepath.Join(base, "x"), Options{MaxBytes: 1, Sync: "batch"})
	require.ErrorContains(t, err, `unknown sync policy "batch"`)

	// The directory itself is created, 0700, with a 0600 file.
	dir := filepath.Join(base, "spill")
	s, err := Open(dir, Options{MaxBytes: 1 << 20, LockTimeout: 100 * 1e6})
	require.NoError(t, err)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	fi, err = os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// Held: a second Open fails after the timeout instead of hanging.
	_, err = Open(dir, Options{MaxBytes: 1 << 20, LockTimeout: 100 * 1e6})
	require.ErrorIs(t, err, ErrLocked)
	require.ErrorContains(t, err, "locked by another process")
	require.NoError(t, s.Close())
	s, err = Open(dir, Options{MaxBytes: 1 << 20})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Not writable (root writes anyway).
	if os.Geteuid() != 0 {
		ro := filepath.Join(base, "ro")
		require.NoError(t, os.Mkdir(ro, 0o500))
		_, err = Open(ro, Options{MaxBytes: 1})
		require.ErrorContains(t, err, "is not writable")
	}

	// A file of garbage is refused as corrupt, and so is another bbolt file.
	bad := filepath.Join(base, "bad")
	require.NoError(t, os.Mkdir(bad, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(bad, FileName), bytes.Repeat([]byte("garbage!"), 4096), 0o600))
	_, err = Open(bad, Options{MaxBytes: 1 << 20})
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "move it aside")

	other := filepath.Join(base, "other")
	require.NoError(t, os.Mkdir(other, 0o700))
	db, err := bolt.Open(filepath.Join(other, FileName), 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("foo"))
		return err
	}))
	require.NoError(t, db.Close())
	_, err = Open(other, Options{MaxBytes: 1 << 20})
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "not a spill")

	// Both meta pages damaged (a torn first page and a torn second one).
	torn := filepath.Join(base, "torn")
	s, err = Open(torn, Options{MaxBytes: 1 << 20})
	require.NoError(t, err)
	_, _, err = s.Append(recs("a", 3))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	fh, err := os.OpenFile(filepath.Join(torn, FileName), os.O_RDWR, 0)
	require.NoError(t, err)
	ps := int64(os.Getpagesize())
	_, err = fh.WriteAt(bytes.Repeat([]byte{0xff}, 64), 16)
	require.NoError(t, err)
	_, err = fh.WriteAt(bytes.Repeat([]byte{0xff}, 64), ps+16)
	require.NoError(t, err)
	require.NoError(t, fh.Close())
	_, err = Open(torn, Options{MaxBytes: 1 << 20})
	require.ErrorIs(t, err, ErrCorrupt)
}

// One damaged meta page (a torn meta write): bbolt falls back to the other
// and the spill opens with the records of the last complete commit.
func TestOneTornMetaPageFallsBack(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MaxBytes: 1 << 20})
	require.NoError(t, err)
	_, _, err = s.Append(recs("a", 3))
	require.NoError(t, err)
	_, _, err = s.Append(recs("b", 3))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	// Find the meta page with the higher txid and damage it.
	fh, err := os.OpenFile(filepath.Join(dir, FileName), os.O_RDWR, 0)
	require.NoError(t, err)
	ps := int64(os.Getpagesize())
	txid := func(page int64) uint64 {
		b := make([]byte, 8)
		_, err := fh.ReadAt(b, page*ps+16+48) // page header 16, txid at meta offset 48
		require.NoError(t, err)
		return binary.LittleEndian.Uint64(b)
	}
	newest := int64(0)
	if txid(1) > txid(0) {
		newest = 1
	}
	_, err = fh.WriteAt([]byte{0xde, 0xad}, newest*ps+16+40)
	require.NoError(t, err)
	require.NoError(t, fh.Close())

	s, err = Open(dir, Options{MaxBytes: 1 << 20})
	require.NoError(t, err)
	defer s.Close()
	got := all(t, s)
	require.Equal(t, uint64(3), s.LastSeq(), "the commit of b is gone with its meta page")
	require.Equal(t, strs(recs("a", 3)), datas(got))
	require.Equal(t, 3, s.Len())
}

func TestCompactWhenEmpty(t *testing.T) {
	dir := t.TempDir()
	var logs []string
	s := open(t, dir, Options{CompactAbove: 1 << 20, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	big := bytes.Repeat([]byte("x"), 4000)
	for i := 0; i < 100; i++ {
		_, _, err := s.Append([][]byte{big, big, big, big, big})
		require.NoError(t, err)
	}
	before, err := s.FileSize()
	require.NoError(t, err)
	require.Greater(t, before, int64(2<<20))
	require.NoError(t, s.Ack(250)) // not empty: no compaction
	sz, _ := s.FileSize()
	require.Equal(t, before, sz)
	require.NoError(t, s.Ack(500))
	after, err := s.FileSize()
	require.NoError(t, err)
	require.Less(t, after, int64(1<<20))
	require.Len(t, logs, 1)
	require.Contains(t, logs[0], "compacted")
	_, err = os.Stat(filepath.Join(dir, compactName))
	require.ErrorIs(t, err, os.ErrNotExist)

	f, _, err := s.Append(recs("a", 1))
	require.NoError(t, err)
	require.Equal(t, uint64(501), f)
	require.NoError(t, s.Close())

	// A leftover of a compaction killed before its rename is removed.
	require.NoError(t, os.WriteFile(filepath.Join(dir, compactName), []byte("junk"), 0o600))
	s = open(t, dir, Options{})
	_, err = os.Stat(filepath.Join(dir, compactName))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Equal(t, 1, s.Len())
	require.Equal(t, uint64(501), s.LastSeq())
}

// The file stays bounded under a queue workload: records of random sizes
// (60 B to 9 KiB, so some need overflow pages) appended until full and
// acked from the head, many times over.
func TestFileSizeBounded(t *testing.T) {
	const maxBytes = 4 << 20
	s := open(t, t.TempDir(), Options{MaxBytes: maxBytes, CompactAbove: -1})
	rng := rand.New(rand.NewSource(1))
	var acked uint64
	var peak int64
	for round := 0; round < 30; round++ {
		for {
			n := 1 + rng.Intn(20)
			batch := make([][]byte, n)
			for i := range batch {
				batch[i] = bytes.Repeat([]byte{'a' + byte(rng.Intn(26))}, 60+rng.Intn(9*1024))
			}
			_, _, err := s.Append(batch)
			if errors.Is(err, ErrFull) {
				break
			}
			require.NoError(t, err)
		}
		require.LessOrEqual(t, s.Bytes(), int64(maxBytes))
		// Ack a random part of what is stored.
		got, _, err := s.Next(acked, 1<<30, 0)
		require.NoError(t, err)
		acked = got[rng.Intn(len(got))].Seq
		require.NoError(t, s.Ack(acked))
		sz, err := s.FileSize()
		require.NoError(t, err)
		peak = max(peak, sz)
	}
	t.Logf("maxBytes %d: peak file size %d (%.2fx)", maxBytes, peak, float64(peak)/maxBytes)
	// bbolt grows the file in 16 MiB steps once over 16 MiB; below that it
	// doubles the mapping. Live pages are at most ~2x the data (a leaf page
	// or overflow run is at least half full), plus pages freed by the
	// last commits.
	require.LessOrEqual(t, peak, int64(3*maxBytes+(1<<20)))
}

func TestClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MaxBytes: 1 << 20})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, _, err = s.Append(recs("a", 1))
	require.ErrorIs(t, err, ErrClosed)
	_, _, err = s.Next(0, 1, 0)
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.Ack(1), ErrClosed)
	require.NoError(t, s.Close())
	require.False(t, strings.Contains(fmt.Sprint(err), "%!"))
}
