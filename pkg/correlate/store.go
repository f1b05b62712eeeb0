package correlate

import (
	"hash/maphash"
	"math"
	"strings"
	"unsafe"
)

// Storage layout. Every entity lives in one slab of fixed-size pages and is
// named by its slot number (uint32; slot 0 is the sentinel of the LRU ring).
// The slab holds no Go pointers, so the garbage collector never scans it:
//
//   - the lookup table is open addressing over slot numbers (4 bytes a
//     slot), keyed by a hash kept in the entity;
//   - LRU links are slot numbers;
//   - the entity ID is a range of an append-only byte arena (IDs longer
//     than maxSmallID are kept as their own strings);
//   - the first rule entry is inline, further ones in a side table of
//     slices that only multi-rule entities use;
//   - rule names are interned and referenced by number, with counts of
//     their users so unused names can be dropped;
//   - incident IDs live in a side table too: most entities never get one;
//   - so do dedup witnesses beyond each entry's last alert (witness.go).
//
// An evicted entity's slot goes straight to the entity that displaced it,
// so the slab never grows beyond the entity cap. Arena bytes are never
// overwritten (results hand out strings that point into it); the arena is
// rebuilt from the live IDs once it holds more dead bytes than live ones.

// ruleEntry is one rule on one entity. rule 0 marks an unused entry.
type ruleEntry struct {
	first, last int64
	rule        uint32 // index into Tracker.ruleNames
	count       uint32
	scoreSum    uint32
	tactics     uint16
	lastTactics uint16 // of the alert at last: with lastScore, a witness (witness.go)
	maxScore    uint8
	lastScore   uint8
}

type entity struct {
	hwm          int64 // newest alert time applied
	episodeStart int64
	e0           ruleEntry // the first rule entry, inline
	hash         uint32    // of the ID, for the lookup table
	prev, next   uint32    // LRU ring: prev is more recently seen
	idChunk      uint32    // arena chunk, or index into bigIDs when idLen is 0
	idOff        uint16
	idLen        uint16
	more         uint32 // 1 + index into Tracker.more (entries after e0); 0 for none
	incident     uint32 // 1 + index into Tracker.incidents; 0 until computed
	kind         uint8  // index into kindNames
	maxBand      int8
	crossed      uint8 // escalations already fired in this episode
	samples      bool  // has witnesses in Tracker.samples
}

const (
	pageBits = 10
	pageSize = 1 << pageBits
	pageMask = pageSize - 1

	chunkSize  = 1 << 16 // arena chunk; offsets fit in uint16
	maxSmallID = 1 << 10 // longer IDs are stored as their own strings

	// compactMin is the least dead arena space worth a rebuild.
	compactMin = 1 << 20

	// maxInterned is the rule-name table size from which names no entry
	// uses any more are dropped before adding another.
	maxInterned = 1 << 16
)

// idArena holds entity IDs back to back in chunks. Bytes once written are
// never changed, so strings made from them stay valid after the entity is
// gone; dropping a chunk is left to the garbage collector.
type idArena struct {
	chunks     [][]byte
	live, used int // bytes of live IDs; bytes taken from chunks (live, dead and unused chunk tails)
	compactMin int
}

func (a *idArena) put(b []byte) (chunk uint32, off uint16) {
	n := len(a.chunks)
	if n == 0 || cap(a.chunks[n-1])-len(a.chunks[n-1]) < len(b) {
		if n > 0 {
			a.used += cap(a.chunks[n-1]) - len(a.chunks[n-1])
		}
		a.chunks = append(a.chunks, make([]byte, 0, chunkSize))
		n++
	}
	c := a.chunks[n-1]
	a.chunks[n-1] = append(c, b...)
	a.live += len(b)
	a.used += len(b)
	return uint32(n - 1), uint16(len(c))
}

func (a *idArena) bytes(chunk uint32, off, n uint16) []byte {
	return a.chunks[chunk][off : int(off)+int(n)]
}

// wantsCompaction says whether the dead bytes outweigh the live ones.
func (a *idArena) wantsCompaction() bool {
	dead := a.used - a.live
	return dead >= a.compactMin && dead > a.live
}

type ruleName struct {
	name string
	refs uint32 // rule entries using the name
}

// slot returns the entity in slot s.
func (t *Tracker) slot(s uint32) *entity { return &t.pages[s>>pageBits][s&pageMask] }

// newSlot takes the next unused slot, adding a page when needed.
func (t *Tracker) newSlot() uint32 {
	t.slots++
	s := uint32(t.slots)
	if int(s>>pageBits) == len(t.pages) {
		t.pages = append(t.pages, new([pageSize]entity))
	}
	return s
}

// id returns e's ID. Arena IDs are strings over arena bytes, which are
// never modified.
func (t *Tracker) id(e *entity) string {
	if e.idLen == 0 {
		return t.bigIDs[e.idChunk]
	}
	b := t.arena.bytes(e.idChunk, e.idOff, e.idLen)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (t *Tracker) setID(e *entity, key []byte) {
	if len(key) > maxSmallID || len(key) == 0 {
		e.idLen = 0
		s := string(key)
		if n := len(t.bigFree); n > 0 {
			e.idChunk = t.bigFree[n-1]
			t.bigFree = t.bigFree[:n-1]
			t.bigIDs[e.idChunk] = s
		} else {
			e.idChunk = uint32(len(t.bigIDs))
			t.bigIDs = append(t.bigIDs, s)
		}
		return
	}
	e.idChunk, e.idOff = t.arena.put(key)
	e.idLen = uint16(len(key))
}

func (t *Tracker) freeID(e *entity) {
	if e.idLen == 0 {
		t.bigIDs[e.idChunk] = ""
		t.bigFree = append(t.bigFree, e.idChunk)
		return
	}
	t.arena.live -= int(e.idLen)
}

// compactArena copies the live IDs into fresh chunks.
func (t *Tracker) compactArena() {
	old := t.arena.chunks
	t.arena.chunks, t.arena.live, t.arena.used = nil, 0, 0
	for s := uint32(1); s <= uint32(t.slots); s++ {
		e := t.slot(s)
		if e.idLen == 0 {
			continue
		}
		e.idChunk, e.idOff = t.arena.put(old[e.idChunk][e.idOff : int(e.idOff)+int(e.idLen)])
	}
	t.compactions++
}

// find returns the slot holding the entity whose ID is key, or 0.
func (t *Tracker) find(h uint32, key []byte) uint32 {
	mask := uint32(len(t.table) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.table[i]
		if s == 0 {
			return 0
		}
		if e := t.slot(s); e.hash == h && t.idIs(e, key) {
			return s
		}
	}
}

// idIs says whether e's ID is key.
func (t *Tracker) idIs(e *entity, key []byte) bool {
	if e.idLen == 0 {
		return t.bigIDs[e.idChunk] == string(key)
	}
	return int(e.idLen) == len(key) && string(t.arena.bytes(e.idChunk, e.idOff, e.idLen)) == string(key)
}

func (t *Tracker) tableInsert(s uint32, h uint32) {
	mask := uint32(len(t.table) - 1)
	i := h & mask
	for t.table[i] != 0 {
		i = (i + 1) & mask
	}
	t.table[i] = s
}

// tableDelete removes slot s, shifting later members of its probe run
// back so lookups never need tombstones.
func (t *Tracker) tableDelete(s uint32, h uint32) {
	mask := uint32(len(t.table) - 1)
	i := h & mask
	for t.table[i] != s {
		i = (i + 1) & mask
	}
	for j := i; ; {
		t.table[i] = 0
		for {
			j = (j + 1) & mask
			m := t.table[j]
			if m == 0 {
				return
			}
			home := t.slot(m).hash & mask
			// m may fill the hole at i unless its home lies cyclically in (i, j].
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.table[i] = m
				i = j
				break
			}
		}
	}
}

// growTable doubles the lookup table when adding one more entity would
// fill it past 3/4. Every slot in use is in the table when it is called.
func (t *Tracker) growTable() {
	if (t.slots+1)*4 <= len(t.table)*3 {
		return
	}
	t.table = make([]uint32, 2*len(t.table))
	for s := uint32(1); s <= uint32(t.slots); s++ {
		t.tableInsert(s, t.slot(s).hash)
	}
}

func (t *Tracker) unlink(s uint32, e *entity) {
	t.slot(e.prev).next = e.next
	t.slot(e.next).prev = e.prev
}

func (t *Tracker) pushFront(s uint32, e *entity) {
	head := t.slot(0)
	e.prev, e.next = 0, head.next
	t.slot(head.next).prev = s
	head.next = s
}

// lookup finds the entity whose ID is in t.key, creating it when new, and
// marks it most recently seen. It returns the entity's slot too.
func (t *Tracker) lookup(kind uint8) (uint32, *entity, bool) {
	h := uint32(maphash.Bytes(t.seed, t.key))
	if s := t.find(h, t.key); s != 0 {
		e := t.slot(s)
		if e.prev != 0 { // not already the most recently seen
			t.unlink(s, e)
			t.pushFront(s, e)
		}
		return s, e, true
	}
	var s uint32
	if t.slots >= max(t.cfg.MaxEntities, 1) {
		s = t.evictOldest()
	} else {
		t.growTable()
		s = t.newSlot()
	}
	e := t.slot(s)
	*e = entity{hash: h, kind: kind, maxBand: -1}
	t.setID(e, t.key)
	t.tableInsert(s, h)
	t.pushFront(s, e)
	t.tracked.Add(1)
	if t.arena.wantsCompaction() {
		t.compactArena()
	}
	return s, e, false
}

// evictOldest drops the least recently seen entity and returns its slot,
// for the caller to reuse.
func (t *Tracker) evictOldest() uint32 {
	s := t.slot(0).prev
	t.release(s, t.slot(s))
	t.evicted.Add(1)
	return s
}

// release unlinks entity s and frees everything it holds (ID, rule
// entries, overflow, incident, side samples); the slot itself stays.
func (t *Tracker) release(s uint32, e *entity) {
	t.unlink(s, e)
	t.tableDelete(s, e.hash)
	t.freeID(e)
	if e.e0.rule != 0 {
		t.releaseRule(e.e0.rule)
	}
	for _, en := range t.rest(e) {
		t.releaseRule(en.rule)
	}
	t.releaseMore(e)
	t.clearIncident(e)
	if e.samples {
		t.sampleCount -= len(t.samples[s])
		delete(t.samples, s)
		e.samples = false
	}
	t.tracked.Add(-1)
}

// incidentOf returns e's incident ID, computing it once per episode.
func (t *Tracker) incidentOf(e *entity) string {
	if e.incident == 0 {
		s := incidentID(t.id(e), e.episodeStart)
		if n := len(t.incFree); n > 0 {
			k := t.incFree[n-1]
			t.incFree = t.incFree[:n-1]
			t.incidents[k] = s
			e.incident = k + 1
		} else {
			t.incidents = append(t.incidents, s)
			e.incident = uint32(len(t.incidents))
		}
	}
	return t.incidents[e.incident-1]
}

func (t *Tracker) clearIncident(e *entity) {
	if e.incident != 0 {
		t.incidents[e.incident-1] = ""
		t.incFree = append(t.incFree, e.incident-1)
		e.incident = 0
	}
}

// internRule returns the number of a rule name, counting one more user.
// The table keeps its own copy: never the alert's string, which may keep
// the whole parsed alert alive.
func (t *Tracker) internRule(rule string) uint32 {
	if i, ok := t.ruleIdx[rule]; ok {
		t.ruleNames[i].refs++
		return i
	}
	if len(t.ruleIdx) >= t.sweepAt {
		t.sweepRules()
	}
	s := strings.Clone(rule)
	var i uint32
	if n := len(t.ruleFree); n > 0 {
		i = t.ruleFree[n-1]
		t.ruleFree = t.ruleFree[:n-1]
		t.ruleNames[i] = ruleName{name: s, refs: 1}
	} else {
		i = uint32(len(t.ruleNames))
		t.ruleNames = append(t.ruleNames, ruleName{name: s, refs: 1})
	}
	t.ruleIdx[s] = i
	return i
}

func (t *Tracker) releaseRule(i uint32) { t.ruleNames[i].refs-- }

// sweepRules drops the names no entry uses. The next sweep waits until the
// table has doubled, so sweeping costs O(1) per added name.
func (t *Tracker) sweepRules() {
	for i := 1; i < len(t.ruleNames); i++ {
		if r := &t.ruleNames[i]; r.refs == 0 && r.name != "" {
			delete(t.ruleIdx, r.name)
			r.name = ""
			t.ruleFree = append(t.ruleFree, uint32(i))
		}
	}
	t.sweepAt = max(t.internMin, 2*len(t.ruleIdx))
}

func (t *Tracker) ruleOf(en *ruleEntry) string { return t.ruleNames[en.rule].name }

// rest returns e's entries after the first.
func (t *Tracker) rest(e *entity) []ruleEntry {
	if e.more == 0 {
		return nil
	}
	return t.more[e.more-1]
}

// releaseMore gives e's extra entries back, keeping small buffers for the
// next entity that needs them.
func (t *Tracker) releaseMore(e *entity) {
	if e.more == 0 {
		return
	}
	k := e.more - 1
	if cap(t.more[k]) <= 8 {
		t.more[k] = t.more[k][:0]
	} else {
		t.more[k] = nil
	}
	t.moreFree = append(t.moreFree, k)
	e.more = 0
}

// findEntry returns e's entry for rule, or nil.
func (t *Tracker) findEntry(e *entity, rule string) *ruleEntry {
	if e.e0.rule == 0 {
		return nil
	}
	if t.ruleOf(&e.e0) == rule {
		return &e.e0
	}
	rest := t.rest(e)
	for i := range rest {
		if t.ruleOf(&rest[i]) == rule {
			return &rest[i]
		}
	}
	return nil
}

// addEntry adds an entry for rule, replacing the least recently seen one
// (the first of them on a tie) at the limit.
func (t *Tracker) addEntry(e *entity, side *[]sample, rule string, at int64, limit int) *ruleEntry {
	r := t.internRule(rule)
	fresh := ruleEntry{rule: r, first: at, last: at}
	rest := t.rest(e)
	if e.e0.rule != 0 && 1+len(rest) >= limit {
		oldest := &e.e0
		for i := range rest {
			if rest[i].last < oldest.last {
				oldest = &rest[i]
			}
		}
		dropSamples(side, math.MinInt64, oldest.rule)
		t.releaseRule(oldest.rule)
		*oldest = fresh
		return oldest
	}
	if e.e0.rule == 0 {
		e.e0 = fresh
		return &e.e0
	}
	if e.more == 0 {
		if n := len(t.moreFree); n > 0 {
			e.more = t.moreFree[n-1] + 1
			t.moreFree = t.moreFree[:n-1]
		} else {
			t.more = append(t.more, nil)
			e.more = uint32(len(t.more))
		}
	}
	k := e.more - 1
	t.more[k] = append(t.more[k], fresh)
	return &t.more[k][len(t.more[k])-1]
}

// expire drops entries last seen before cutoff, with their witnesses,
// keeping the order of the others.
func (t *Tracker) expire(e *entity, side *[]sample, cutoff int64) {
	if e.e0.rule == 0 {
		return
	}
	rest := t.rest(e)
	w := 0 // entries kept so far: e0, then rest[0], rest[1], …
	if e.e0.last >= cutoff {
		w = 1
	} else {
		dropSamples(side, math.MinInt64, e.e0.rule)
		t.releaseRule(e.e0.rule)
	}
	for _, en := range rest {
		switch {
		case en.last < cutoff:
			dropSamples(side, math.MinInt64, en.rule)
			t.releaseRule(en.rule)
		case w == 0:
			e.e0 = en
			w++
		default:
			rest[w-1] = en
			w++
		}
	}
	if w == 0 {
		e.e0 = ruleEntry{}
	}
	if w <= 1 {
		t.releaseMore(e)
	} else {
		t.more[e.more-1] = rest[:w-1]
	}
}

func (t *Tracker) tacticsSince(e *entity, cutoff int64) uint16 {
	var m uint16
	if e.e0.rule != 0 && e.e0.last >= cutoff {
		m |= e.e0.tactics
	}
	for _, en := range t.rest(e) {
		if en.last >= cutoff {
			m |= en.tactics
		}
	}
	return m
}

// Drop forgets every entity whose ID match accepts, as if it had never
// been seen (not counted as evicted), and returns how many it dropped. The
// Kafka input drops the entities of partitions it no longer owns: their
// story continues in the consumer that took the partition over.
func (t *Tracker) Drop(match func(id string) bool) int {
	n := 0
	// Downwards: a removed slot is refilled from the last one, which was
	// already looked at.
	for s := uint32(t.slots); s >= 1; s-- {
		if match(t.id(t.slot(s))) {
			t.removeSlot(s)
			n++
		}
	}
	if n > 0 && t.arena.wantsCompaction() {
		t.compactArena()
	}
	return n
}

// removeSlot frees entity s and moves the last slot into it, so slots
// 1…slots stay the ones in use.
func (t *Tracker) removeSlot(s uint32) {
	e := t.slot(s)
	t.release(s, e)
	last := uint32(t.slots)
	if s != last {
		le := t.slot(last)
		*e = *le
		mask := uint32(len(t.table) - 1)
		i := e.hash & mask
		for t.table[i] != last {
			i = (i + 1) & mask
		}
		t.table[i] = s
		t.slot(e.prev).next = s
		t.slot(e.next).prev = s
		if e.samples {
			t.samples[s] = t.samples[last]
			delete(t.samples, last)
		}
	}
	*t.slot(last) = entity{}
	t.slots--
}
