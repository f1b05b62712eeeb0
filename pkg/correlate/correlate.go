// Package correlate keeps each entity's story across alerts: counts and
// risk over sliding windows on alert time, the tactics reached and the
// furthest kill-chain stage, repeats of a rule (dedup), escalations that
// fire once, and an incident id per episode. docs/correlation.md explains
// every number.
//
// State changes once per alert, in the order alerts are observed; no wall
// clock is read, so the same input in the same order always gives the same
// results. Another order of the same alerts may give other results, but
// never hides one: an alert that gets dedup.first in time order gets it in
// any order (witness.go). Not safe for concurrent use (Falco drives one instance from one
// thread; the CLI is serial).
package correlate

import (
	"hash/fnv"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/risk"
)

// Tactic bit positions are kill-chain positions: bit 0 Reconnaissance …
// bit 13 Impact. Exfiltration is 12, Impact 13.
const (
	bitExfiltration = 12
	bitImpact       = 13
)

// zeta15 is ζ(1.5), which bounds Σ 1/i^1.5 and so normalizes the entity
// score to 0–100 (Elastic's entity risk scoring).
const zeta15 = 2.6123753486854883

// Escalation and incident reason names.
const (
	EscMultiTactic     = "multi_tactic"
	EscRiskThreshold   = "risk_threshold"
	EscExfilOrImpact   = "exfiltration_or_impact"
	EscLevelHigh       = "level_high"
	EscLevelCritical   = "level_critical"
	ReasonSameEntity   = "same_entity"
	ReasonProgression  = "tactic_progression"
	ReasonMultiTactic  = "multi_tactic"
	ReasonRiskThreshod = "risk_threshold"
	ReasonRepeat       = "repeat"
)

// Input is one alert as correlation sees it.
type Input struct {
	Alert *alert.Alert
	Score uint8 // the alert's risk score
	// Tactics is the kill-chain position of the alert's primary tactic (one
	// bit; 0 when unknown). One alert counts for one tactic: a technique
	// such as Valid Accounts spans four tactics, and counting them all
	// would make a single alert look like a multi-stage attack.
	Tactics uint16
}

// Result is the entity's story as of one alert.
type Result struct {
	EntityID, Kind string
	Alerts         uint64 // alerts on the entity in the window
	RiskSum        uint64 // sum of risk scores in the risk window
	EntityScore    uint8  // bounded 0–100
	Tactics        uint16 // kill-chain positions seen in the window
	Rules          uint64 // distinct rules in the window
	Escalation     []string
	DedupCount     uint64
	DedupFirst     bool
	FirstSeen      int64 // of this rule on this entity, ns
	LastSeen       int64
	Storm          bool
	IncidentID     string
	Reasons        []string
	Late           bool // older than the out-of-order tolerance (still applied where it belongs in time)
}

// Stage is the furthest kill-chain position reached (1–14), 0 for none.
func (r *Result) Stage() int { return bits.Len16(r.Tactics) }

const (
	crossedTactics = 1 << iota
	crossedRisk
	crossedExfil
)

// Tracker holds every entity's state, bounded by MaxEntities with
// least-recently-seen eviction. store.go describes the layout.
type Tracker struct {
	cfg     config.Correlation
	window  int64
	riskWin int64
	tol     int64
	horizon int64 // max(window, riskWin): late alerts older than this before the newest count nowhere

	pages []*[pageSize]entity // the slab; slot 0 is the LRU sentinel: its next is the most, its prev the least recently seen
	slots int                 // slots in use, 1…slots
	table []uint32            // open addressing over slots, 0 empty; len is a power of two
	seed  maphash.Seed
	arena idArena
	// bigIDs holds IDs longer than maxSmallID; bigFree its unused indexes.
	bigIDs  []string
	bigFree []uint32

	ruleNames []ruleName        // by number; 0 is no rule
	ruleIdx   map[string]uint32 // name -> number
	ruleFree  []uint32
	sweepAt   int // table size that triggers the next sweep
	internMin int // sweepAt never goes below this

	more     [][]ruleEntry // entries after the first, for entities with several rules
	moreFree []uint32

	incidents []string
	incFree   []uint32

	// samples holds, by slot, the witnesses of entities that have more
	// than their entries' last alerts (entity.samples is set); see sample.
	samples      map[uint32][]sample
	sampleCount  int // samples held in samples
	sampleBudget int // most samples held (maxTrackerSamples; tests lower it)

	key         []byte // scratch: the entity ID of the alert being observed
	scores      []uint8
	compactions int // arena rebuilds, for tests
	evicted     atomic.Uint64
	tracked     atomic.Int64
	lateSeen    atomic.Uint64
}

// NewTracker returns a tracker for cfg (validated by config.Parse).
func NewTracker(cfg config.Correlation) *Tracker {
	return &Tracker{
		cfg:          cfg,
		window:       int64(cfg.WindowSec) * 1e9,
		riskWin:      int64(cfg.RiskWindowSec) * 1e9,
		tol:          int64(cfg.OutOfOrderSec) * 1e9,
		horizon:      int64(max(cfg.WindowSec, cfg.RiskWindowSec)) * 1e9,
		samples:      make(map[uint32][]sample),
		sampleBudget: maxTrackerSamples,
		pages:        []*[pageSize]entity{new([pageSize]entity)},
		table:        make([]uint32, 64),
		seed:         maphash.MakeSeed(),
		arena:        idArena{compactMin: compactMin},
		ruleNames:    make([]ruleName, 1),
		ruleIdx:      make(map[string]uint32),
		sweepAt:      maxInterned,
		internMin:    maxInterned,
	}
}

// Evicted counts entities dropped at the cap; Tracked counts those held;
// Late counts alerts older than the tolerance (applied all the same).
func (t *Tracker) Evicted() uint64 { return t.evicted.Load() }
func (t *Tracker) Tracked() int64  { return t.tracked.Load() }
func (t *Tracker) Late() uint64    { return t.lateSeen.Load() }

// Observe applies one alert and returns the entity's story as of it.
//
// Arrival order never hides an alert (docs/correlation.md, "Out of
// order"): dedup.first is decided by witnesses, real alerts of the same
// rule that make this one a repeat (see witnessed), never by what the
// entity happened to see first. An alert older than the tolerance is
// flagged late but still applied where it belongs in time, unless it is
// older than both windows, which it could not count in anyway.
func (t *Tracker) Observe(in Input) Result {
	var kind uint8
	t.key, kind = appendEntity(t.key[:0], in.Alert)
	s, e, existed := t.lookup(kind)
	at := in.Alert.Time
	x := sample{at: at, score: in.Score, tactics: in.Tactics}
	res := Result{EntityID: t.id(e), Kind: kindNames[e.kind]}
	late := existed && at < e.hwm-t.tol
	if late {
		t.lateSeen.Add(1)
		res.Late = true
		if at < e.hwm-t.horizon {
			// Outside both windows: it would count nowhere, so it changes
			// nothing. It is still raised unless a known alert repeats it.
			t.fillAggregates(e, e.hwm, &res)
			res.DedupCount, res.FirstSeen, res.LastSeen = 1, at, at
			res.DedupFirst = !t.witnessed(t.loadSamples(s, e), t.findEntry(e, in.Alert.Rule), x)
			return res
		}
	}
	now := max(e.hwm, at) // late alerts never move it, so never start an episode
	if !existed || now-e.hwm > t.window {
		e.episodeStart, e.maxBand, e.crossed = at, -1, 0
		t.clearIncident(e)
	}
	orig := t.loadSamples(s, e)
	side := orig
	t.expire(e, &side, now-t.horizon)
	dropSamples(&side, now-t.horizon-t.window, 0)
	prevTactics := t.tacticsSince(e, now-t.window)

	en := t.findEntry(e, in.Alert.Rule)
	res.DedupFirst = !t.witnessed(side, en, x)
	applied := true
	switch {
	case en == nil:
		en = t.addEntry(e, &side, in.Alert.Rule, at, max(t.cfg.MaxRulesPerEntity, 1))
	case en.last < at-t.window:
		// The rule was quiet for a whole window before this alert: its run
		// starts over (earlier samples of it stay witnesses until pruned).
		*en = ruleEntry{rule: en.rule, first: at, last: at}
	case at < en.first-t.window:
		// A late alert from an earlier run of its rule, which in time order
		// the current run would have started over from: it counts nowhere,
		// but witnesses other alerts of that run.
		applied = false
	}
	addSample(&side, en, x, t.sampleCount >= t.sampleBudget)
	t.storeSamples(s, e, orig, side)
	if applied {
		en.count++
		en.first, en.last = min(en.first, at), max(en.last, at)
		en.scoreSum += uint32(in.Score)
		en.maxScore = max(en.maxScore, in.Score)
		en.tactics |= in.Tactics
	}
	e.hwm = now

	t.fillAggregates(e, now, &res)
	if applied {
		res.DedupCount, res.FirstSeen, res.LastSeen = uint64(en.count), en.first, en.last
		res.Storm = t.cfg.StormEvery > 0 && en.count%uint32(t.cfg.StormEvery) == 0
	} else {
		res.DedupCount, res.FirstSeen, res.LastSeen = 1, at, at
	}

	// Escalations fire once per episode, on the alert that crosses.
	nTactics := bits.OnesCount16(res.Tactics)
	var esc uint8
	if e.crossed&crossedTactics == 0 && nTactics >= t.cfg.TacticThreshold {
		e.crossed |= crossedTactics
		esc |= 1 << 0
	}
	if e.crossed&crossedRisk == 0 && res.RiskSum >= uint64(t.cfg.RiskThreshold) {
		e.crossed |= crossedRisk
		esc |= 1 << 1
	}
	const exfilImpact = 1<<bitExfiltration | 1<<bitImpact
	if e.crossed&crossedExfil == 0 && in.Tactics&exfilImpact != 0 && prevTactics&^exfilImpact != 0 {
		e.crossed |= crossedExfil
		esc |= 1 << 2
	}
	band := bandOf(res.EntityScore)
	if band > e.maxBand {
		switch band {
		case 2:
			esc |= 1 << 3
		case 3:
			esc |= 1 << 4
		}
		e.maxBand = band
	}
	res.Escalation = escalationLists[esc]

	var why uint8
	if res.Alerts >= 2 {
		why |= 1 << 0
	}
	if nTactics >= 2 {
		why |= 1 << 1
	}
	if nTactics >= t.cfg.TacticThreshold {
		why |= 1 << 2
	}
	if res.RiskSum >= uint64(t.cfg.RiskThreshold) {
		why |= 1 << 3
	}
	if applied && en.count >= 2 {
		why |= 1 << 4
	}
	res.Reasons = reasonLists[why]
	if why != 0 {
		res.IncidentID = t.incidentOf(e)
	}
	return res
}

// Escalation and reason lists are subsets of a fixed, ordered set, so each
// possible list is built once and shared (read-only) by every result with
// it: bit i of the index selects element i. A nil entry is the empty list.
var (
	escalationLists = subsets(EscMultiTactic, EscRiskThreshold, EscExfilOrImpact, EscLevelHigh, EscLevelCritical)
	reasonLists     = subsets(ReasonSameEntity, ReasonProgression, ReasonMultiTactic, ReasonRiskThreshod, ReasonRepeat)
)

func subsets(names ...string) [32][]string {
	var out [32][]string
	for mask := 1; mask < len(out); mask++ {
		var l []string
		for i, n := range names {
			if mask&(1<<i) != 0 {
				l = append(l, n)
			}
		}
		out[mask] = slices.Clip(l)
	}
	return out
}

func (t *Tracker) fillAggregates(e *entity, now int64, res *Result) {
	scores := t.scores[:0]
	add := func(en *ruleEntry) {
		if en.last >= now-t.window {
			res.Alerts += uint64(en.count)
			res.Tactics |= en.tactics
			res.Rules++
		}
		if en.last >= now-t.riskWin {
			res.RiskSum += uint64(en.scoreSum)
			scores = append(scores, en.maxScore)
		}
	}
	if e.e0.rule != 0 {
		add(&e.e0)
	}
	rest := t.rest(e)
	for i := range rest {
		add(&rest[i])
	}
	res.EntityScore = entityScore(scores)
	t.scores = scores
}

// entityScore is Elastic's bounded entity score over one score per rule:
// sort descending, Σ sᵢ / i^1.5, divide by ζ(1.5).
func entityScore(scores []uint8) uint8 {
	slices.Sort(scores)
	var sum float64
	for i := range scores {
		s := scores[len(scores)-1-i]
		d := 0.0
		if i < len(rankPow) {
			d = rankPow[i]
		} else {
			d = math.Pow(float64(i+1), 1.5)
		}
		sum += float64(s) / d
	}
	return uint8(math.Min(100, math.Round(sum/zeta15)))
}

// rankPow[i] is (i+1)^1.5, the divisor of the (i+1)-th highest score.
var rankPow = func() (t [64]float64) {
	for i := range t {
		t[i] = math.Pow(float64(i+1), 1.5)
	}
	return t
}()

func bandOf(score uint8) int8 {
	switch risk.LevelOf(int(score)) {
	case risk.LevelLow:
		return 0
	case risk.LevelMedium:
		return 1
	case risk.LevelHigh:
		return 2
	}
	return 3
}

func incidentID(entityID string, episodeStart int64) string {
	var buf [128]byte
	b := append(buf[:0], entityID...)
	b = append(b, '|')
	b = strconv.AppendInt(b, episodeStart, 10)
	h := fnv.New64a()
	h.Write(b)
	sum := h.Sum64()
	out := []byte("INC-0000000000000000")
	for i := len(out) - 1; sum != 0; i-- {
		out[i] = "0123456789abcdef"[sum&0xf]
		sum >>= 4
	}
	return string(out)
}
