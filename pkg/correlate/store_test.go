package correlate

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
)

// checkStore walks the tracker's storage and fails on any inconsistency:
// every slot in use is in the lookup table exactly once and found by its
// own ID, the table holds nothing else, and the LRU ring links every slot
// in use once, in both directions.
func checkStore(t *testing.T, tr *Tracker) {
	t.Helper()
	inTable := 0
	for _, s := range tr.table {
		if s != 0 {
			inTable++
			require.LessOrEqual(t, int(s), tr.slots, "table names a slot beyond the slab")
		}
	}
	require.Equal(t, tr.slots, inTable, "table members")
	for s := uint32(1); s <= uint32(tr.slots); s++ {
		e := tr.slot(s)
		id := tr.id(e)
		require.Equal(t, s, tr.find(e.hash, []byte(id)), "slot %d (%q) not found by its ID", s, id)
	}
	seen := map[uint32]bool{}
	prev := uint32(0)
	for s := tr.slot(0).next; s != 0; s = tr.slot(s).next {
		require.False(t, seen[s], "slot %d twice in the LRU ring", s)
		seen[s] = true
		require.Equal(t, prev, tr.slot(s).prev, "back link of slot %d", s)
		prev = s
	}
	require.Equal(t, prev, tr.slot(0).prev, "ring tail")
	require.Len(t, seen, tr.slots, "LRU ring members")
	require.Equal(t, int64(tr.slots), tr.Tracked())
}

// A model of the tracker's entity set: the IDs held, least recently seen
// first, and the alerts each saw since it was (re)created.
type lruModel struct {
	order  []string
	alerts map[string]int
	cap    int
}

func (m *lruModel) observe(id string) (alerts int, evicted bool) {
	if _, ok := m.alerts[id]; ok {
		for i, o := range m.order {
			if o == id {
				m.order = append(m.order[:i:i], m.order[i+1:]...)
				break
			}
		}
	} else if len(m.order) == m.cap {
		delete(m.alerts, m.order[0])
		m.order = m.order[1:]
		evicted = true
	}
	m.order = append(m.order, id)
	m.alerts[id]++
	return m.alerts[id], evicted
}

// Many evictions in random order against the model: which entities are
// remembered, how many alerts each has, and the eviction count agree, and
// the table and the ring stay consistent throughout.
func TestIndexIntegrityAfterManyEvictions(t *testing.T) {
	for _, cap := range []int{1, 2, 7, 64, 300} {
		t.Run(fmt.Sprint(cap), func(t *testing.T) {
			tr := newTracker(func(c *config.Correlation) { c.MaxEntities = cap })
			m := &lruModel{alerts: map[string]int{}, cap: cap}
			r := rand.New(rand.NewSource(int64(cap)))
			pool := 3 * cap
			var evicted uint64
			for i := 0; i < 20_000; i++ {
				id := fmt.Sprintf("c%d", r.Intn(pool))
				want, ev := m.observe(id)
				if ev {
					evicted++
				}
				// One rule, alerts 1 ms apart: every alert since creation is in the window.
				res := tr.Observe(Input{Alert: containerAlert(id, "r", storyStartTime+int64(i)*1e6), Score: 1})
				require.Equal(t, "container:worker-3/"+id, res.EntityID)
				require.Equal(t, uint64(want), res.Alerts, "alert %d on %s", i, id)
				require.Equal(t, uint64(want), res.DedupCount)
				if i%997 == 0 {
					checkStore(t, tr)
				}
			}
			checkStore(t, tr)
			assert.Equal(t, evicted, tr.Evicted())
			assert.Equal(t, int64(min(cap, pool)), tr.Tracked())
		})
	}
}

// An evicted entity's slot goes to the entity that displaced it: the slab
// never holds more slots than the cap, however many entities pass.
func TestEvictedSlotsAreReused(t *testing.T) {
	const limit = 100
	tr := newTracker(func(c *config.Correlation) { c.MaxEntities = limit })
	for i := 0; i < 50*pageSize; i++ {
		tr.Observe(Input{Alert: containerAlert(fmt.Sprintf("c%d", i), "r", storyStartTime+int64(i)), Score: 1})
	}
	assert.Equal(t, limit, tr.slots)
	assert.Len(t, tr.pages, 1, "no page added after the cap")
	assert.Equal(t, uint64(50*pageSize-limit), tr.Evicted())
	checkStore(t, tr)
	// The newest 100 are remembered, the one before them is not.
	last := 50*pageSize - 1
	r := tr.Observe(Input{Alert: containerAlert(fmt.Sprintf("c%d", last-limit+1), "r", storyStartTime+int64(last+1)), Score: 1})
	assert.Equal(t, uint64(2), r.Alerts)
	r = tr.Observe(Input{Alert: containerAlert(fmt.Sprintf("c%d", last-limit), "r", storyStartTime+int64(last+2)), Score: 1})
	assert.Equal(t, uint64(1), r.Alerts)
}

// Entity IDs live in an arena that is rebuilt from the live IDs once dead
// ones dominate: its size stays bounded under endless churn, the IDs held
// survive each rebuild, and IDs already handed out in results never change.
func TestArenaSpaceIsReclaimed(t *testing.T) {
	const limit = 500
	tr := newTracker(func(c *config.Correlation) { c.MaxEntities = limit })
	tr.arena.compactMin = 64 << 10
	id := func(i int) string { return fmt.Sprintf("%d-%s", i, strings.Repeat("z", i%200)) }
	kept := map[int]string{}
	const n = 200_000
	maxChunks := 0
	for i := 0; i < n; i++ {
		res := tr.Observe(Input{Alert: containerAlert(id(i), "r", storyStartTime+int64(i)), Score: 1})
		if i%10_007 == 0 {
			kept[i] = res.EntityID
		}
		maxChunks = max(maxChunks, len(tr.arena.chunks))
	}
	require.Greater(t, tr.compactions, 5, "the arena was rebuilt along the way")
	// Live IDs average ~120 bytes: 500 of them fit in one chunk; dead space
	// up to max(live, compactMin) adds at most two more.
	assert.LessOrEqual(t, maxChunks, 4, "arena chunks under churn")
	assert.LessOrEqual(t, tr.arena.used-tr.arena.live, max(tr.arena.live, tr.arena.compactMin))
	for i, s := range kept {
		assert.Equal(t, "container:worker-3/"+id(i), s, "a result's EntityID changed after its entity left")
	}
	checkStore(t, tr)
	for i := n - limit; i < n; i++ {
		res := tr.Observe(Input{Alert: containerAlert(id(i), "r", storyStartTime+n+int64(i)), Score: 1})
		require.Equal(t, uint64(2), res.Alerts, "entity %d forgotten", i)
		require.Equal(t, "container:worker-3/"+id(i), res.EntityID)
	}
}

// IDs too long for the arena are kept on their own; their table entries are
// reused after eviction too.
func TestLongIDs(t *testing.T) {
	const limit = 20
	tr := newTracker(func(c *config.Correlation) { c.MaxEntities = limit })
	long := func(i int) string { return fmt.Sprintf("%d/%s", i, strings.Repeat("L", maxSmallID+i%7)) }
	for i := 0; i < 5000; i++ {
		c := long(i)
		if i%2 == 0 {
			c = fmt.Sprint(i) // short and long IDs mixed
		}
		res := tr.Observe(Input{Alert: containerAlert(c, "r", storyStartTime+int64(i)), Score: 1})
		require.Equal(t, "container:worker-3/"+c, res.EntityID)
	}
	assert.LessOrEqual(t, len(tr.bigIDs), limit)
	checkStore(t, tr)
	res := tr.Observe(Input{Alert: containerAlert(long(4999), "r", storyStartTime+6000), Score: 1})
	assert.Equal(t, uint64(2), res.Alerts)
}

// Entities with several rules keep every entry (the first inline, the rest
// aside) in order of arrival; at the per-entity limit the least recently
// seen rule is the one dropped.
func TestRuleEntriesBeyondTheFirst(t *testing.T) {
	tr := newTracker(func(c *config.Correlation) { c.MaxRulesPerEntity = 3 })
	at := storyStartTime
	obs := func(rule string) Result {
		at += int64(1e9)
		return tr.Observe(Input{Alert: containerAlert("abc", rule, at), Score: 10})
	}
	obs("r1")
	obs("r2")
	obs("r3")
	r := obs("r1") // r1 seen again: r2 is now the least recently seen
	assert.Equal(t, uint64(2), r.DedupCount)
	assert.Equal(t, uint64(3), r.Rules)
	r = obs("r4") // replaces r2
	assert.Equal(t, uint64(3), r.Rules)
	assert.Equal(t, uint64(4), r.Alerts, "r1 twice, r3, r4")
	assert.Equal(t, uint64(3), obs("r1").DedupCount, "r1 kept its count")
	assert.Equal(t, uint64(1), obs("r2").DedupCount, "r2 was dropped and starts over")

	// After the risk window every entry expires; the entity then holds only
	// the new rule, and its extra entries are given back.
	at += int64(tr.cfg.RiskWindowSec+1) * 1e9
	r = obs("r9")
	assert.Equal(t, uint64(1), r.Rules)
	assert.Equal(t, uint64(1), r.Alerts)
	assert.Zero(t, tr.slot(tr.slot(0).next).more, "no extra entries held for a single rule")
}

// The rule-name table drops names no entry uses any more, so a stream of
// ever new rule names does not grow it without bound.
func TestRuleNamesAreReclaimed(t *testing.T) {
	tr := newTracker(func(c *config.Correlation) { c.MaxEntities = 10 })
	tr.internMin, tr.sweepAt = 50, 50
	for i := 0; i < 10_000; i++ {
		rule := fmt.Sprintf("rule %d", i)
		res := tr.Observe(Input{Alert: containerAlert(fmt.Sprintf("c%d", i%40), rule, storyStartTime+int64(i)), Score: 1})
		require.Equal(t, uint64(1), res.DedupCount)
	}
	// 10 entities hold one rule each; the table sweeps when it reaches
	// max(50, twice what the last sweep kept).
	assert.LessOrEqual(t, len(tr.ruleIdx), 50)
	assert.LessOrEqual(t, len(tr.ruleNames), 51)
	live := 0
	for _, r := range tr.ruleNames[1:] {
		live += int(r.refs)
	}
	assert.Equal(t, 10, live, "one reference per held entry")
}

// Incident IDs are kept per episode in a side table whose entries are
// reused: a new episode gets a new ID, and churn does not grow the table.
func TestIncidentTableReuse(t *testing.T) {
	tr := newTracker(func(c *config.Correlation) { c.MaxEntities = 5 })
	var ids []string
	for i := 0; i < 2000; i++ {
		c := fmt.Sprintf("c%d", i/2) // two alerts per entity: the second opens an incident
		res := tr.Observe(Input{Alert: containerAlert(c, "r", storyStartTime+int64(i)), Score: 1})
		if i%2 == 1 {
			require.NotEmpty(t, res.IncidentID)
			ids = append(ids, res.IncidentID)
		} else {
			require.Empty(t, res.IncidentID)
		}
	}
	assert.LessOrEqual(t, len(tr.incidents), 5)
	distinct := map[string]bool{}
	for _, id := range ids {
		distinct[id] = true
	}
	assert.Len(t, distinct, 1000, "one incident per entity")
	// Same entity, new episode after a quiet window: a different incident.
	a := tr.Observe(Input{Alert: containerAlert("c999", "r", storyStartTime+2000), Score: 1})
	later := storyStartTime + int64(tr.cfg.WindowSec+1)*1e9
	tr.Observe(Input{Alert: containerAlert("c999", "r", later), Score: 1})
	b := tr.Observe(Input{Alert: containerAlert("c999", "r", later+1), Score: 1})
	require.NotEmpty(t, b.IncidentID)
	assert.NotEqual(t, a.IncidentID, b.IncidentID)
}

// The slab entry is the per-entity cost that does not depend on the ID:
// it must stay at 88 bytes (docs/correlation.md and docs/performance.md
// count on it); the inline rule entry is 40 of them.
func TestEntitySize(t *testing.T) {
	assert.Equal(t, uintptr(88), unsafe.Sizeof(entity{}))
	assert.Equal(t, uintptr(40), unsafe.Sizeof(ruleEntry{}))
}

// BenchmarkObserve is the hot path with a few entities held: one alert
// observed on one of 16 containers, four rules.
func BenchmarkObserve(b *testing.B) {
	tr := newTracker(nil)
	alerts := make([]*alert.Alert, 64)
	for i := range alerts {
		alerts[i] = containerAlert(fmt.Sprintf("c%d", i%16), story[i%len(story)].rule, storyStartTime)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := alerts[i%len(alerts)]
		a.Time = storyStartTime + int64(i)*1e6
		tr.Observe(Input{Alert: a, Score: 50, Tactics: 1 << (i % 14)})
	}
}
