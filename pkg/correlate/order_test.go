package correlate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
)

// Arrival order must never hide an alert: whatever order the same alerts
// arrive in, every alert that gets dedup.first when they arrive in time
// order gets it too (docs/correlation.md, "Out of order").

const second = int64(time.Second)

// storyAlert is one generated alert; its index in the story is its identity.
type storyAlert struct {
	container, rule string
	at              int64
	score           uint8
	tactics         uint16
}

// orderRules have fixed primary tactics, as the engine gives them (one per
// rule); one has none.
var orderRules = []struct {
	name    string
	tactics uint16
}{
	{"Terminal shell in container", tExecution},
	{"Fileless execution via memfd_create", tDefenseEvade},
	{"Read sensitive file untrusted", tCredential},
	{"Outbound Connection to C2 Servers", tC2},
	{"Data exfiltration over DNS", tExfiltration},
	{"Unclassified rule", 0},
}

// randomStory makes n alerts on a few containers, times in [0, span) with no
// two alerts of one container at the same instant (ties between alerts of
// one rule on one entity are retries of one alert: see
// TestRetriedDuplicateIsSuppressed), and bursts of repeats.
func randomStory(rng *rand.Rand, n int, span int64) []storyAlert {
	containers := []string{"c1", "c2", "c3", "c4"}
	scores := []uint8{20, 35, 50, 65, 80, 95}
	used := map[string]bool{}
	var out []storyAlert
	uniqueTime := func(c string, at int64) (int64, bool) {
		for k := 0; k < 10; k++ {
			if at < 0 || at >= span {
				return 0, false
			}
			key := fmt.Sprint(c, at)
			if !used[key] {
				used[key] = true
				return at, true
			}
			at += 1 + rng.Int64N(7*second)
		}
		return 0, false
	}
	for len(out) < n {
		if len(out) > 0 && rng.IntN(3) == 0 {
			// A repeat of an earlier alert's rule, shortly after or before it,
			// with the same or another score.
			p := out[rng.IntN(len(out))]
			at := p.at + (rng.Int64N(600)-200)*second
			if at, ok := uniqueTime(p.container, at); ok {
				s := p.score
				if rng.IntN(2) == 0 {
					s = scores[rng.IntN(len(scores))]
				}
				out = append(out, storyAlert{p.container, p.rule, at, s, p.tactics})
			}
			continue
		}
		r := orderRules[rng.IntN(len(orderRules))]
		c := containers[rng.IntN(len(containers))]
		if at, ok := uniqueTime(c, rng.Int64N(span/second)*second+rng.Int64N(second)); ok {
			out = append(out, storyAlert{c, r.name, at, scores[rng.IntN(len(scores))], r.tactics})
		}
	}
	return out
}

// replay observes the alerts in the given order on a fresh tracker and
// returns each alert's result by identity.
func replay(cfg config.Correlation, story []storyAlert, order []int) []Result {
	tr := NewTracker(cfg)
	out := make([]Result, len(story))
	for _, i := range order {
		a := story[i]
		out[i] = tr.Observe(Input{Alert: containerAlert(a.container, a.rule, storyStartTime+a.at), Score: a.score, Tactics: a.tactics})
	}
	return out
}

func timeOrder(story []storyAlert) []int {
	order := make([]int, len(story))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(story[a].at - story[b].at) })
	return order
}

// otherOrders returns named arrival orders of the same alerts: shuffles,
// reversed, each container's alerts reversed in place, and a random batch
// held back and delivered at the end (a retry or a replayed file).
func otherOrders(rng *rand.Rand, story []storyAlert, shuffles int) map[string][]int {
	sorted := timeOrder(story)
	orders := map[string][]int{}
	for k := 0; k < shuffles; k++ {
		o := slices.Clone(sorted)
		rng.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
		orders[fmt.Sprintf("shuffle %d", k)] = o
	}
	rev := slices.Clone(sorted)
	slices.Reverse(rev)
	orders["reversed"] = rev
	for _, c := range []string{"c1", "c2"} {
		o := slices.Clone(sorted)
		var pos []int
		for p, i := range o {
			if story[i].container == c {
				pos = append(pos, p)
			}
		}
		for l, r := 0, len(pos)-1; l < r; l, r = l+1, r-1 {
			o[pos[l]], o[pos[r]] = o[pos[r]], o[pos[l]]
		}
		orders["reversed "+c] = o
	}
	var kept, held []int
	for _, i := range sorted {
		if rng.IntN(4) == 0 {
			held = append(held, i)
		} else {
			kept = append(kept, i)
		}
	}
	orders["held back"] = append(kept, held...)
	return orders
}

func TestArrivalOrderNeverHidesAnAlert(t *testing.T) {
	cfg := config.Default().Correlation // 900 s window, 60 s tolerance
	span := 3 * int64(cfg.WindowSec) * second
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 13))
		story := randomStory(rng, 120, span)
		want := replay(cfg, story, timeOrder(story))
		firsts := 0
		for _, r := range want {
			if r.DedupFirst {
				firsts++
			}
		}
		require.Less(t, firsts, len(story), "seed %d: the story has repeats that time order suppresses", seed)
		for name, order := range otherOrders(rng, story, 8) {
			got := replay(cfg, story, order)
			for i, w := range want {
				if w.DedupFirst && !got[i].DedupFirst {
					a := story[i]
					t.Errorf("seed %d, %s: %s on %s at %ds score %d is dedup.first in time order, not here",
						seed, name, a.rule, a.container, a.at/second, a.score)
				}
			}
		}
	}
}

// With every alert inside one window, the entity's story ends the same in
// every order: all alerts, the tactics and the risk sum count, and the
// escalations reached in time order are reached.
func TestArrivalOrderKeepsTheStoryWithinAWindow(t *testing.T) {
	cfg := config.Default().Correlation
	cfg.RiskThreshold = 400 // reached by some entities, not all
	span := int64(cfg.WindowSec-1) * second
	type story struct {
		alerts, risk uint64
		tactics      uint16
		escalations  map[string]bool
	}
	summarize := func(st []storyAlert, res []Result) map[string]*story {
		out := map[string]*story{}
		for i, r := range res {
			s := out[st[i].container]
			if s == nil {
				s = &story{escalations: map[string]bool{}}
				out[st[i].container] = s
			}
			s.alerts, s.risk, s.tactics = max(s.alerts, r.Alerts), max(s.risk, r.RiskSum), s.tactics|r.Tactics
			for _, e := range r.Escalation {
				if e == EscMultiTactic || e == EscRiskThreshold {
					s.escalations[e] = true
				}
			}
		}
		return out
	}
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		st := randomStory(rng, 40, span)
		want := summarize(st, replay(cfg, st, timeOrder(st)))
		perContainer := map[string]uint64{}
		for _, a := range st {
			perContainer[a.container]++
		}
		for c, s := range want {
			require.Equal(t, perContainer[c], s.alerts, "seed %d %s: time order counts every alert", seed, c)
		}
		for name, order := range otherOrders(rng, st, 6) {
			got := summarize(st, replay(cfg, st, order))
			for c, w := range want {
				g := got[c]
				assert.Equal(t, w.alerts, g.alerts, "seed %d, %s, %s: alerts", seed, name, c)
				assert.Equal(t, w.risk, g.risk, "seed %d, %s, %s: risk sum", seed, name, c)
				assert.Equal(t, w.tactics, g.tactics, "seed %d, %s, %s: tactics", seed, name, c)
				for e := range w.escalations {
					assert.True(t, g.escalations[e], "seed %d, %s, %s: escalation %s reached in time order", seed, name, c, e)
				}
			}
		}
	}
}

func observeAt(tr *Tracker, container, rule string, at int64, score uint8, tactics uint16) Result {
	return tr.Observe(Input{Alert: containerAlert(container, rule, storyStartTime+at), Score: score, Tactics: tactics})
}

// The first alert of a rule on an entity is raised however late it arrives.
func TestFirstOfRuleArrivingLateIsRaised(t *testing.T) {
	tr := newTracker(nil) // 900 s window, 60 s tolerance
	observeAt(tr, "abc", "other", 600*second, 30, tExecution)
	r := observeAt(tr, "abc", "Read sensitive file untrusted", 300*second, 82, tCredential)
	assert.True(t, r.Late, "300 s older than the newest: beyond the tolerance")
	assert.True(t, r.DedupFirst)
	// A repeat of it, later still but also late, is a plain repeat.
	again := observeAt(tr, "abc", "Read sensitive file untrusted", 310*second, 82, tCredential)
	assert.True(t, again.Late)
	assert.False(t, again.DedupFirst)
	assert.Equal(t, uint64(2), again.DedupCount)
}

// Two alerts of one rule 30 s apart arriving reversed: the earlier one is
// the first of its kind, as in time order.
func TestReversedPairWithinTolerance(t *testing.T) {
	inOrder := newTracker(nil)
	a := observeAt(inOrder, "abc", "r", 0, 50, tExecution)
	b := observeAt(inOrder, "abc", "r", 30*second, 50, tExecution)
	require.True(t, a.DedupFirst)
	require.False(t, b.DedupFirst)

	reversed := newTracker(nil)
	b = observeAt(reversed, "abc", "r", 30*second, 50, tExecution)
	a = observeAt(reversed, "abc", "r", 0, 50, tExecution)
	assert.False(t, a.Late, "30 s is within the tolerance")
	assert.True(t, a.DedupFirst, "the t=0 alert is the first of its kind")
	assert.True(t, b.DedupFirst, "t=30 arrived first, when nothing witnessed it")
}

// Window 900 s, one rule at t=0 (90), t=2000 (50), t=2500 (60). In time
// order t=2500 is new: it beats everything of its rule in the 900 s before
// it. A late t=0 must not change that.
func TestRunBoundaryUnderReordering(t *testing.T) {
	inOrder := newTracker(nil)
	observeAt(inOrder, "abc", "r", 0, 90, tExecution)
	observeAt(inOrder, "abc", "r", 2000*second, 50, tExecution)
	want := observeAt(inOrder, "abc", "r", 2500*second, 60, tExecution)
	require.True(t, want.DedupFirst)

	late := newTracker(nil)
	observeAt(late, "abc", "r", 2000*second, 50, tExecution)
	old := observeAt(late, "abc", "r", 0, 90, tExecution)
	assert.True(t, old.Late)
	assert.True(t, old.DedupFirst, "nothing known precedes it")
	got := observeAt(late, "abc", "r", 2500*second, 60, tExecution)
	assert.True(t, got.DedupFirst, "90 at t=0 is more than a window before t=2500")
	// And 55 at t=2600 is a repeat of 60 at t=2500 in any order.
	assert.False(t, observeAt(late, "abc", "r", 2600*second, 55, tExecution).DedupFirst)
}

// A late alert inside the window counts in the entity's story: alerts,
// tactics, risk sum, and the escalation it makes the entity cross.
func TestLateAlertCountsWithinTheWindow(t *testing.T) {
	tr := newTracker(nil) // tactic threshold 3, risk threshold 250
	first := observeAt(tr, "abc", "a", 600*second, 80, tExecution)
	observeAt(tr, "abc", "b", 700*second, 90, tCredential)
	late := observeAt(tr, "abc", "c", 300*second, 95, tImpact)
	assert.True(t, late.Late)
	assert.Equal(t, uint64(3), late.Alerts)
	assert.Equal(t, uint64(80+90+95), late.RiskSum)
	assert.Equal(t, tExecution|tCredential|tImpact, int(late.Tactics))
	assert.Subset(t, late.Escalation, []string{EscMultiTactic, EscRiskThreshold}, "the late alert makes the entity cross")
	assert.Equal(t, first.EntityID, late.EntityID)
	require.NotEmpty(t, late.IncidentID)
	after := observeAt(tr, "abc", "d", 710*second, 10, 0)
	assert.Equal(t, uint64(4), after.Alerts, "the late alert still counts")
	assert.Equal(t, late.IncidentID, after.IncidentID, "the late alert joined the current episode")
	assert.Empty(t, after.Escalation, "escalations fire once per episode")
	assert.Equal(t, uint64(1), tr.Late())
	// Its rule's first-seen time is its own.
	c := observeAt(tr, "abc", "c", 720*second, 95, tImpact)
	assert.Equal(t, storyStartTime+300*second, c.FirstSeen)
	assert.Equal(t, uint64(2), c.DedupCount)
}

// An alert older than both windows before the entity's newest changes
// nothing, but nothing known repeats it, so it is raised.
func TestLateAlertOlderThanBothWindows(t *testing.T) {
	tr := newTracker(func(c *config.Correlation) { c.WindowSec, c.RiskWindowSec = 900, 3600 })
	before := observeAt(tr, "abc", "a", 10_000*second, 40, tExecution)
	old := observeAt(tr, "abc", "b", 10_000*second-3601*second, 90, tImpact)
	assert.True(t, old.Late)
	assert.True(t, old.DedupFirst)
	assert.Equal(t, before.Alerts, old.Alerts)
	assert.Equal(t, before.RiskSum, old.RiskSum)
	assert.Zero(t, old.Tactics&tImpact)
	assert.Empty(t, old.Escalation)
	after := observeAt(tr, "abc", "c", 10_001*second, 10, 0)
	assert.Equal(t, uint64(2), after.Alerts, "the old alert did not count")
	assert.Equal(t, uint64(50), after.RiskSum)
}

// Two identical deliveries of one alert (a sender's retry) are one alert:
// the second is not raised again, whichever order around it.
func TestRetriedDuplicateIsSuppressed(t *testing.T) {
	tr := newTracker(nil)
	observeAt(tr, "abc", "r", 100*second, 70, tCredential)
	observeAt(tr, "abc", "other", 500*second, 10, 0)
	a := observeAt(tr, "abc", "r", 100*second, 70, tCredential)
	assert.True(t, a.Late)
	assert.False(t, a.DedupFirst)
}

// BenchmarkObserveOutOfOrder is BenchmarkObserve's hot path as the engine
// drives it (one primary tactic per rule, a few scores) with alerts
// arriving up to two minutes out of time order, so some are late.
func BenchmarkObserveOutOfOrder(b *testing.B) {
	tr := newTracker(nil)
	alerts := make([]*alert.Alert, 64)
	for i := range alerts {
		alerts[i] = containerAlert(fmt.Sprintf("c%d", i%16), orderRules[i%len(orderRules)].name, storyStartTime)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := alerts[i%len(alerts)]
		a.Time = storyStartTime + int64(i)*1e6 - int64((i*7919)%120)*second
		tr.Observe(Input{Alert: a, Score: uint8(20 + 15*(i%5)), Tactics: orderRules[i%len(orderRules)].tactics})
	}
}

// An evicted entity's witnesses go with it: the entity that takes its slot
// starts with none.
func TestWitnessesDoNotOutliveTheirEntity(t *testing.T) {
	tr := newTracker(func(c *config.Correlation) { c.MaxEntities = 1 })
	observeAt(tr, "a", "r", 0, 90, tExecution)
	observeAt(tr, "a", "r", 10*second, 40, tExecution) // 90 stays a witness beside the last alert
	observeAt(tr, "a", "r", 5*second, 60, tExecution)  // a late one among them
	require.Equal(t, uint64(0), tr.Evicted())
	b := observeAt(tr, "b", "r", 20*second, 50, tExecution)
	assert.Equal(t, uint64(1), tr.Evicted())
	assert.True(t, b.DedupFirst, "a's alerts are not b's")
	assert.True(t, observeAt(tr, "b", "r", 30*second, 70, tExecution).DedupFirst, "a's 90 does not witness b's 70")
	assert.False(t, observeAt(tr, "b", "r", 40*second, 70, tExecution).DedupFirst)
	assert.Empty(t, tr.samples, "b's scores never went down: it needs no side witnesses, and a's went with a")
}

// A rule whose score goes down keeps its earlier, higher alert as a witness
// for the window, and no longer.
func TestHigherEarlierAlertWitnessesForOneWindow(t *testing.T) {
	tr := newTracker(nil) // 900 s window
	observeAt(tr, "abc", "r", 0, 90, tExecution)
	observeAt(tr, "abc", "r", 100*second, 40, tExecution)
	assert.False(t, observeAt(tr, "abc", "r", 800*second, 80, tExecution).DedupFirst, "90 at t=0 is within the window")
	assert.True(t, observeAt(tr, "abc", "r", 950*second, 85, tExecution).DedupFirst, "90 at t=0 has left the window")
	assert.True(t, observeAt(tr, "abc", "r", 960*second, 50, tImpact).DedupFirst, "a tactic the rule had not shown")
	assert.False(t, observeAt(tr, "abc", "r", 970*second, 50, 0).DedupFirst, "no tactic: any witness will do")
}

// The side witnesses of all entities together stay within the tracker's
// budget (memory bounded by bytes), the count matches what is held, and
// evictions give their share back. A full budget only adds dedup.first.
func TestSampleBudgetBoundsAllEntities(t *testing.T) {
	tr := newTracker(func(c *config.Correlation) { c.MaxEntities = 50 })
	tr.sampleBudget = 100
	held := func() int {
		n := 0
		for _, l := range tr.samples {
			n += len(l)
		}
		return n
	}
	// Each entity's alerts arrive newest first with falling scores: every
	// one after the first is late and kept as a witness while room lasts.
	for c := 0; c < 80; c++ {
		name := fmt.Sprintf("c%d", c)
		for i := 0; i < 20; i++ {
			observeAt(tr, name, "r", int64(200-i)*second, uint8(90-i), tExecution)
		}
		require.Equal(t, held(), tr.sampleCount, "after entity %d", c)
		require.LessOrEqual(t, tr.sampleCount, 100, "after entity %d", c)
	}
	assert.Equal(t, uint64(30), tr.Evicted())
	assert.Positive(t, tr.sampleCount)

	// With the budget spent (and no eviction to free some), a newcomer
	// cannot keep its late alert at 100 s as a witness, so the alert at
	// 150 s that it would have made a repeat is raised: the budget costs a
	// duplicate, never a hidden alert.
	spent := func(tr *Tracker) Result {
		observeAt(tr, "fresh", "r", 300*second, 50, tExecution)
		observeAt(tr, "fresh", "r", 100*second, 60, tExecution)
		return observeAt(tr, "fresh", "r", 150*second, 60, tExecution)
	}
	full := newTracker(nil)
	full.sampleBudget = 10
	for i := 0; i < 20; i++ {
		observeAt(full, "busy", "r", int64(200-i)*second, uint8(90-i), tExecution)
	}
	require.Equal(t, full.sampleBudget, full.sampleCount)
	assert.True(t, spent(full).DedupFirst)
	assert.Equal(t, full.sampleBudget, full.sampleCount)
	assert.False(t, spent(newTracker(nil)).DedupFirst, "with room, the 100 s alert witnesses the 150 s one")
}
