package correlate

// dedup.first by witnesses.
//
// An alert X (time at, score s, primary tactic T) of rule R on an entity is
// a plain repeat, dedup.first false, only when triage knows a witness: a
// real alert W of R on the entity with
//
//	at - window <= W.at <= at,  W.score >= s,  and T == 0 or W's tactic is T.
//
// Anything else is raised. The witness relation depends on the two alerts
// only, never on which arrived first, so:
//
//   - In time order every alert before X is known when X arrives, and the
//     samples below keep enough of them to decide exactly: X is suppressed
//     iff some earlier alert witnesses it.
//   - In any other order triage knows at most those same earlier alerts
//     (plus later ones, which cannot witness X), and suppresses only on a
//     sample, which is a real alert. So an alert raised in time order is
//     raised in every order; reordering can only add raises (an alert whose
//     witness arrives after it).
//
// The one exception is two alerts of one rule on one entity at the same
// nanosecond: they witness each other (a sender's retry delivers the same
// alert twice, and the copy must not be raised again), so which of two
// such alerts is raised depends on arrival.
//
// The tactic condition asks for the witness's own tactic rather than any
// alert of the entity with T: the rule's own alerts carry its tactic (the
// engine gives each rule one primary tactic), and an "any rule" condition
// could only be decided exactly with a last-seen time per tactic per
// entity. An alert whose tactic its rule never had before is raised, as a
// repeat that adds a tactic always was.
//
// Samples. Exactness in time order needs, for every known alert W, a
// sample D that witnesses everything W would witness from then on:
// D.at >= W.at, D.score >= W.score and (W's tactic is 0 or D's equals it)
// — D covers W. Future alerts in time order are no older than D, so any
// window holding W holds D. The samples of a rule are therefore the known
// alerts that no later known alert covers: at most one per distinct score
// in decreasing order, in practice one or two. The newest (the entry's
// last alert) lives in the rule entry itself (last, lastScore,
// lastTactics); the others in Tracker.samples, by slot. A late alert is
// kept as a sample even when a later one covers it, because it witnesses
// other late alerts near it (a replayed file's repeats) which the later
// one cannot.
//
// Samples are dropped when covered, when older than both windows and one
// more window before the entity's newest alert (no alert that is still
// applied can be witnessed by them), with their rule entry (expired,
// replaced at maxRulesPerEntity) and with their entity (evicted). Only the
// last two lose anything time order would have used: exactness holds while
// the caps maxEntities and maxRulesPerEntity, and maxSamples below, drop
// nothing that is still in a window.

// sample is one known alert of a rule on an entity, kept as a witness.
type sample struct {
	at      int64
	rule    uint32
	tactics uint16
	score   uint8
}

// maxSamples bounds an entity's samples outside its rule entries; beyond
// it the oldest is dropped. Time order needs more only with more than
// maxSamples alerts of strictly decreasing score per rule, summed over the
// entity's rules, inside one window.
const maxSamples = 256

// maxTrackerSamples bounds the side samples of all entities together (16
// bytes each: 16 MiB), so memory stays bounded by bytes whatever the caps
// on entities allow (100,000 entities × maxSamples would be 400 MiB). With
// the budget spent, an entity replaces its own oldest sample, or keeps
// none: a missing witness can only add dedup.first, never hide an alert.
const maxTrackerSamples = 1 << 20

// covers says whether d witnesses every alert at or after d.at that w
// witnesses.
func covers(d, w sample) bool {
	return d.at >= w.at && d.score >= w.score && (w.tactics == 0 || w.tactics == d.tactics)
}

// witnesses says whether w makes x a repeat (w and x of the same rule).
func (t *Tracker) witnesses(w, x sample) bool {
	return w.at <= x.at && w.at >= x.at-t.window && w.score >= x.score && (x.tactics == 0 || w.tactics == x.tactics)
}

// witnessed says whether a known alert of en's rule makes x a repeat;
// side is the entity's samples outside its entries.
func (t *Tracker) witnessed(side []sample, en *ruleEntry, x sample) bool {
	if en == nil {
		return false
	}
	if t.witnesses(en.tail(), x) {
		return true
	}
	for _, w := range side {
		if w.rule == en.rule && t.witnesses(w, x) {
			return true
		}
	}
	return false
}

// tail is the entry's newest alert as a sample.
func (en *ruleEntry) tail() sample {
	return sample{at: en.last, rule: en.rule, tactics: en.lastTactics, score: en.lastScore}
}

// addSample records x, an alert of en's rule, among the witnesses. en.last
// is not updated yet; an entry with count 0 was just created for x.
// full says the tracker's sample budget is spent.
func addSample(side *[]sample, en *ruleEntry, x sample, full bool) {
	x.rule = en.rule
	if en.count == 0 {
		en.lastScore, en.lastTactics = x.score, x.tactics
		return
	}
	kept := (*side)[:0]
	for _, w := range *side {
		if w.rule != x.rule || !covers(x, w) {
			kept = append(kept, w)
		}
	}
	*side = kept
	keep := x
	if tail := en.tail(); x.at >= tail.at {
		// x becomes the tail (the caller sets en.last); the old tail goes to
		// the side unless x covers it.
		en.lastScore, en.lastTactics = x.score, x.tactics
		if covers(x, tail) {
			return
		}
		keep = tail
	}
	if full && len(*side) == 0 {
		return
	}
	if len(*side) >= maxSamples || full {
		oldest := 0
		for i, w := range *side {
			if w.at < (*side)[oldest].at {
				oldest = i
			}
		}
		*side = append((*side)[:oldest], (*side)[oldest+1:]...)
	}
	*side = append(*side, keep)
}

// loadSamples returns the entity's samples outside its entries, for the
// functions above to work on and storeSamples to put back.
func (t *Tracker) loadSamples(s uint32, e *entity) []sample {
	if !e.samples {
		return nil
	}
	return t.samples[s]
}

// storeSamples puts back what loadSamples returned as orig, changed to l.
func (t *Tracker) storeSamples(s uint32, e *entity, orig, l []sample) {
	switch {
	case len(l) == 0:
		if e.samples {
			t.sampleCount -= len(orig)
			delete(t.samples, s)
			e.samples = false
		}
	case len(l) != len(orig) || &l[0] != &orig[0]:
		t.sampleCount += len(l) - len(orig)
		t.samples[s] = l
		e.samples = true
	}
}

// dropSamples drops samples older than cutoff, and all of rule when rule
// is not 0.
func dropSamples(side *[]sample, cutoff int64, rule uint32) {
	l := *side
	kept := l[:0]
	for _, w := range l {
		if w.at >= cutoff && (rule == 0 || w.rule != rule) {
			kept = append(kept, w)
		}
	}
	*side = kept
}
