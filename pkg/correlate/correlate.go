// Package correlate keeps each entity's story across alerts: counts and
// risk over sliding windows on alert time, the tactics reached and the
// furthest kill-chain stage, repeats of a rule (dedup), escalations that
// fire once, and an incident id per episode. docs/correlation.md explains
// every number.
//
// State changes once per alert, in the order alerts are observed; no wall
// clock is read, so the same input in the same order always gives the same
// results. Not safe for concurrent use (Falco drives one instance from one
// thread; the CLI is serial).
package correlate

import (
	"hash/fnv"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
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
	Late           bool // older than the out-of-order tolerance: enriched, not applied
}

// Stage is the furthest kill-chain position reached (1–14), 0 for none.
func (r *Result) Stage() int { return bits.Len16(r.Tactics) }

type ruleEntry struct {
	rule        string
	first, last int64
	count       uint32
	maxScore    uint8
	scoreSum    uint32
	tactics     uint16
}

type entity struct {
	id           string
	prev, next   *entity // LRU list: prev is more recently seen
	hwm          int64   // newest alert time applied
	episodeStart int64
	entries      []ruleEntry
	incident     string // incident ID of the episode, once computed
	kind         uint8  // index into kindNames
	maxBand      int8
	crossed      uint8 // escalations already fired in this episode
}

const (
	crossedTactics = 1 << iota
	crossedRisk
	crossedExfil
)

// Tracker holds every entity's state, bounded by MaxEntities with
// least-recently-seen eviction.
type Tracker struct {
	cfg      config.Correlation
	window   int64
	riskWin  int64
	tol      int64
	byID     map[string]*entity
	lru      entity            // sentinel of the LRU ring: lru.next most, lru.prev least recently seen
	key      []byte            // scratch: the entity ID of the alert being observed
	rules    map[string]string // rule names interned for rule entries
	scores   []uint8
	evicted  atomic.Uint64
	tracked  atomic.Int64
	lateSeen atomic.Uint64
}

// NewTracker returns a tracker for cfg (validated by config.Parse).
func NewTracker(cfg config.Correlation) *Tracker {
	t := &Tracker{
		cfg:     cfg,
		window:  int64(cfg.WindowSec) * 1e9,
		riskWin: int64(cfg.RiskWindowSec) * 1e9,
		tol:     int64(cfg.OutOfOrderSec) * 1e9,
		byID:    make(map[string]*entity),
		rules:   make(map[string]string),
	}
	t.lru.prev, t.lru.next = &t.lru, &t.lru
	return t
}

// Evicted counts entities dropped at the cap; Tracked counts those held;
// Late counts alerts older than the tolerance.
func (t *Tracker) Evicted() uint64 { return t.evicted.Load() }
func (t *Tracker) Tracked() int64  { return t.tracked.Load() }
func (t *Tracker) Late() uint64    { return t.lateSeen.Load() }

// lookup finds the entity whose ID is in t.key, creating it when new, and
// marks it most recently seen.
func (t *Tracker) lookup(kind uint8) (*entity, bool) {
	if e, ok := t.byID[string(t.key)]; ok {
		t.unlink(e)
		t.pushFront(e)
		return e, true
	}
	e := &entity{id: string(t.key), kind: kind, maxBand: -1}
	t.byID[e.id] = e
	t.pushFront(e)
	t.tracked.Add(1)
	for len(t.byID) > t.cfg.MaxEntities {
		old := t.lru.prev
		t.unlink(old)
		delete(t.byID, old.id)
		t.evicted.Add(1)
		t.tracked.Add(-1)
	}
	return e, false
}

// maxInterned bounds the rule-name table; names beyond it are copied per
// entry instead.
const maxInterned = 1 << 16

// ruleName returns an own copy of a rule name for a rule entry: one shared
// copy per distinct rule (entries of a million entities that saw the same
// rule share it), and never the alert's own string, which may keep the
// whole parsed alert alive.
func (t *Tracker) ruleName(rule string) string {
	if s, ok := t.rules[rule]; ok {
		return s
	}
	s := strings.Clone(rule)
	if len(t.rules) < maxInterned {
		t.rules[s] = s
	}
	return s
}

func (t *Tracker) unlink(e *entity) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (t *Tracker) pushFront(e *entity) {
	e.prev, e.next = &t.lru, t.lru.next
	t.lru.next.prev = e
	t.lru.next = e
}

// Observe applies one alert and returns the entity's story as of it.
func (t *Tracker) Observe(in Input) Result {
	var kind uint8
	t.key, kind = appendEntity(t.key[:0], in.Alert)
	e, existed := t.lookup(kind)
	at := in.Alert.Time
	res := Result{EntityID: e.id, Kind: kindNames[e.kind]}
	if existed && at < e.hwm-t.tol {
		// Too old to place: show the entity as it is, change nothing.
		t.lateSeen.Add(1)
		res.Late = true
		t.fillAggregates(e, e.hwm, &res)
		if i := e.find(in.Alert.Rule); i >= 0 {
			en := &e.entries[i]
			res.DedupCount, res.FirstSeen, res.LastSeen = uint64(en.count), en.first, en.last
		}
		return res
	}
	now := max(e.hwm, at)
	if !existed || now-e.hwm > t.window {
		e.episodeStart, e.maxBand, e.crossed, e.incident = at, -1, 0, ""
	}
	e.expire(now - max(t.window, t.riskWin))
	prevTactics := e.tacticsSince(now - t.window)

	i := e.find(in.Alert.Rule)
	if i >= 0 && e.entries[i].last < now-t.window {
		e.entries[i] = ruleEntry{rule: e.entries[i].rule, first: at, last: at} // dedup window passed: a fresh start
	}
	if i < 0 {
		i = e.add(t.ruleName(in.Alert.Rule), at, t.cfg.MaxRulesPerEntity)
	}
	en := &e.entries[i]
	prevCount, prevMax := en.count, en.maxScore
	en.count++
	en.first, en.last = min(en.first, at), max(en.last, at)
	en.scoreSum += uint32(in.Score)
	en.maxScore = max(en.maxScore, in.Score)
	en.tactics |= in.Tactics
	e.hwm = now

	t.fillAggregates(e, now, &res)
	res.DedupCount, res.FirstSeen, res.LastSeen = uint64(en.count), en.first, en.last
	res.DedupFirst = prevCount == 0 || in.Score > prevMax || in.Tactics&^prevTactics != 0
	res.Storm = t.cfg.StormEvery > 0 && en.count%uint32(t.cfg.StormEvery) == 0

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
	if en.count >= 2 {
		why |= 1 << 4
	}
	res.Reasons = reasonLists[why]
	if why != 0 {
		if e.incident == "" {
			e.incident = incidentID(e.id, e.episodeStart)
		}
		res.IncidentID = e.incident
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
	for i := range e.entries {
		en := &e.entries[i]
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

func (e *entity) find(rule string) int {
	for i := range e.entries {
		if e.entries[i].rule == rule {
			return i
		}
	}
	return -1
}

// add appends an entry, evicting the least recently seen one at the cap.
func (e *entity) add(rule string, at int64, limit int) int {
	if len(e.entries) >= limit {
		oldest := 0
		for i := range e.entries {
			if e.entries[i].last < e.entries[oldest].last {
				oldest = i
			}
		}
		e.entries[oldest] = ruleEntry{rule: rule, first: at, last: at}
		return oldest
	}
	e.entries = append(e.entries, ruleEntry{rule: rule, first: at, last: at})
	return len(e.entries) - 1
}

// expire drops entries last seen before cutoff, keeping their order.
func (e *entity) expire(cutoff int64) {
	kept := e.entries[:0]
	for _, en := range e.entries {
		if en.last >= cutoff {
			kept = append(kept, en)
		}
	}
	clear(e.entries[len(kept):])
	e.entries = kept
}

func (e *entity) tacticsSince(cutoff int64) uint16 {
	var m uint16
	for i := range e.entries {
		if e.entries[i].last >= cutoff {
			m |= e.entries[i].tactics
		}
	}
	return m
}
