package spill

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// appendReq is one Append waiting for a commit.
type appendReq struct {
	records     [][]byte
	size        int64
	first, last uint64
	err         error
	// wake receives false when the request was committed (or failed) by
	// another caller's commit, true when this caller must lead the next one.
	wake chan bool
}

// group is the group commit behind Append. The first caller finds no
// commit in flight and leads: it takes every pending request (its own at
// least) and commits them in one bbolt transaction. Callers arriving
// meanwhile queue up; when the leader is done it hands the lead to the
// oldest of them, which commits all that queued. So a lone caller commits
// at once (no timer, unlike bbolt's DB.Batch, which waits up to
// MaxBatchDelay and may run a function twice), and under load one fsync
// covers every caller that arrived during the previous one.
func (s *Spill) group(r *appendReq) {
	s.gmu.Lock()
	s.pending = append(s.pending, r)
	if s.committing {
		s.gmu.Unlock()
		if lead := <-r.wake; !lead {
			return
		}
		s.gmu.Lock()
	} else {
		s.committing = true
	}
	batch := s.pending
	s.pending = nil
	s.gmu.Unlock()

	s.commit(batch)

	s.gmu.Lock()
	if len(s.pending) > 0 {
		s.pending[0].wake <- true
	} else {
		s.committing = false
	}
	s.gmu.Unlock()
	for _, q := range batch {
		if q != r {
			q.wake <- false
		}
	}
}

// commit stores the requests of one group in one transaction. A request
// that does not fit gets ErrFull alone; the others are stored. A failed
// transaction fails them all and stores nothing.
func (s *Spill) commit(batch []*appendReq) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		for _, q := range batch {
			q.err = ErrClosed
		}
		return
	}
	var addBytes, addCount int64
	var lastSeq uint64
	err := s.update(func(tx *bolt.Tx) error {
		// Reset: bbolt may not have run this closure before, but the
		// results must describe only the transaction that commits.
		addBytes, addCount = 0, 0
		b, meta := tx.Bucket(bucketRecords), tx.Bucket(bucketMeta)
		b.FillPercent = 1.0 // keys only ever grow: fill pages fully on split
		stored, n := getCounts(meta)
		seq := b.Sequence()
		for _, q := range batch {
			q.first, q.last, q.err = 0, 0, nil
			if stored+addBytes+q.size > s.opts.MaxBytes {
				q.err = fmt.Errorf("spill: %w: %d bytes stored, %d more asked, maxBytes is %d", ErrFull, stored+addBytes, q.size, s.opts.MaxBytes)
				continue
			}
			q.first = seq + 1
			for _, rec := range q.records {
				seq++
				if err := b.Put(u64(seq), encode(rec)); err != nil {
					return fmt.Errorf("spill: storing record %d: %w", seq, err)
				}
			}
			q.last = seq
			addBytes += q.size
			addCount += int64(len(q.records))
		}
		if addCount == 0 {
			return nil
		}
		if err := b.SetSequence(seq); err != nil {
			return err
		}
		lastSeq = seq
		return putCounts(meta, stored+addBytes, n+addCount)
	})
	if err != nil {
		for _, q := range batch {
			q.first, q.last, q.err = 0, 0, err
		}
		return
	}
	if addCount > 0 {
		s.bytes.Add(addBytes)
		s.count.Add(addCount)
		s.lastSeq.Store(lastSeq)
	}
}
