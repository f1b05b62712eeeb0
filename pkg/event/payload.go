// Package event encodes and decodes the payload of triage's Falco events.
//
// The payload is self-contained: everything field extraction needs travels
// in it, so a capture replays to the same field values without the state
// that produced them. Layout:
//
//	magic "TRG" | version (1 byte) | sections…
//	section: tag (1 byte) | length (uvarint) | body
//
// Decoders skip sections with tags they do not know, so later versions can
// add sections (enrichment, correlation) without breaking older readers;
// the version byte changes only when an existing section changes meaning.
package event

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/triage-dev/triage/pkg/alert"
)

// Version is the payload layout version written by Encode.
const Version = 1

var magic = [3]byte{'T', 'R', 'G'}

// Section tags. Never renumber: old captures must keep decoding.
const (
	tagRule     = 1
	tagPriority = 2
	tagSource   = 3
	tagHostname = 4
	tagTime     = 5
	tagUUID     = 6
	tagOutput   = 7
	tagTag      = 8 // one section per alert tag, in order
	tagField    = 9 // one section per output field, in order

	// Knowledge-base enrichment (IDs only; names, URLs and texts are
	// looked up by ID at extraction, so payloads stay small).
	tagEnv        = 16
	tagVia        = 17
	tagTechnique  = 18 // repeated, in order
	tagTactic     = 19 // repeated, kill-chain order
	tagConflict   = 20
	tagPlaybook   = 21 // repeated, primary first
	tagMitigation = 22 // repeated
	tagD3FEND     = 23 // repeated

	// Risk computed at ingest.
	tagRiskScore  = 24 // 1 byte, 0..100
	tagRiskFactor = 25 // repeated, in order of application

	// Entity correlation, one section (see encodeCorrelation).
	tagCorrelation = 26
)

// Record is what one event carries.
type Record struct {
	Alert alert.Alert
	KB    Enrichment
	Risk  Risk
	Corr  Correlation
}

// Correlation is the entity's story as of this alert (pkg/correlate).
type Correlation struct {
	Set         bool
	EntityID    string
	Kind        string
	Alerts      uint64
	RiskSum     uint64
	EntityScore uint8
	Tactics     uint16 // kill-chain positions, bit 0 = Reconnaissance
	Rules       uint64
	DedupCount  uint64
	DedupFirst  bool
	Storm       bool
	Late        bool
	FirstSeen   int64
	LastSeen    int64
	IncidentID  string
	Escalation  []string
	Reasons     []string
}

// Risk is the alert's score and the factors behind it (docs/risk-model.md).
type Risk struct {
	Scored  bool
	Score   uint8 // 0..100
	Factors []string
}

// Enrichment is what the knowledge base said about the alert at ingest.
type Enrichment struct {
	Env         string   // host, container, k8s, aws, gcp, okta, github
	Via         string   // rule_map, tags, tactic_tags, none
	Techniques  []string // ATT&CK technique IDs
	Tactics     []string // ATT&CK tactic IDs, kill-chain order
	Conflict    string
	Playbooks   []string
	Mitigations []string // ATT&CK M-IDs
	D3FEND      []string
}

// ErrCorrupt is returned (wrapped) for any payload that does not decode.
var ErrCorrupt = errors.New("corrupt triage event payload")

// Encode appends the payload for r to dst and returns it.
func Encode(dst []byte, r *Record) []byte {
	a := &r.Alert
	dst = append(dst, magic[:]...)
	dst = append(dst, Version)
	dst = appendString(dst, tagRule, a.Rule)
	dst = append(dst, tagPriority, 1, byte(a.Priority))
	dst = append(dst, tagTime, 8)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(a.Time))
	dst = appendOptional(dst, tagSource, a.Source)
	dst = appendOptional(dst, tagHostname, a.Hostname)
	dst = appendOptional(dst, tagUUID, a.UUID)
	dst = appendOptional(dst, tagOutput, a.Output)
	for _, t := range a.Tags {
		dst = appendString(dst, tagTag, t)
	}
	for _, f := range a.Fields {
		n := uvarintLen(uint64(len(f.Key))) + len(f.Key) + 1 + len(f.Value)
		dst = append(dst, tagField)
		dst = binary.AppendUvarint(dst, uint64(n))
		dst = binary.AppendUvarint(dst, uint64(len(f.Key)))
		dst = append(dst, f.Key...)
		dst = append(dst, byte(f.Kind))
		dst = append(dst, f.Value...)
	}
	e := &r.KB
	dst = appendOptional(dst, tagEnv, e.Env)
	dst = appendOptional(dst, tagVia, e.Via)
	dst = appendList(dst, tagTechnique, e.Techniques)
	dst = appendList(dst, tagTactic, e.Tactics)
	dst = appendOptional(dst, tagConflict, e.Conflict)
	dst = appendList(dst, tagPlaybook, e.Playbooks)
	dst = appendList(dst, tagMitigation, e.Mitigations)
	dst = appendList(dst, tagD3FEND, e.D3FEND)
	if r.Risk.Scored {
		dst = append(dst, tagRiskScore, 1, r.Risk.Score)
		dst = appendList(dst, tagRiskFactor, r.Risk.Factors)
	}
	if r.Corr.Set {
		// The body goes straight into dst; its length prefix is slid in
		// front of it afterwards (no temporary buffer).
		dst = append(dst, tagCorrelation)
		start := len(dst)
		dst = encodeCorrelation(dst, &r.Corr)
		n := uint64(len(dst) - start)
		w := uvarintLen(n)
		dst = append(dst, make([]byte, w)...)
		copy(dst[start+w:], dst[start:start+int(n)])
		binary.PutUvarint(dst[start:], n)
	}
	return dst
}

const (
	corrDedupFirst = 1 << iota
	corrStorm
	corrLate
)

func encodeCorrelation(dst []byte, c *Correlation) []byte {
	dst = appendLP(dst, c.EntityID)
	dst = appendLP(dst, c.Kind)
	dst = binary.AppendUvarint(dst, c.Alerts)
	dst = binary.AppendUvarint(dst, c.RiskSum)
	dst = append(dst, c.EntityScore)
	dst = binary.LittleEndian.AppendUint16(dst, c.Tactics)
	dst = binary.AppendUvarint(dst, c.Rules)
	dst = binary.AppendUvarint(dst, c.DedupCount)
	var flags byte
	if c.DedupFirst {
		flags |= corrDedupFirst
	}
	if c.Storm {
		flags |= corrStorm
	}
	if c.Late {
		flags |= corrLate
	}
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(c.FirstSeen))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(c.LastSeen))
	dst = appendLP(dst, c.IncidentID)
	for _, l := range [][]string{c.Escalation, c.Reasons} {
		dst = binary.AppendUvarint(dst, uint64(len(l)))
		for _, s := range l {
			dst = appendLP(dst, s)
		}
	}
	return dst
}

func appendLP(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// reader decodes a correlation body; the first error sticks. s holds the
// same bytes as b, as a string, so strings are cut from it without copies.
type reader struct {
	b   []byte
	s   string
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad correlation section", ErrCorrupt)
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b, r.s = r.b[n:], r.s[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	out := r.b[:n]
	r.b, r.s = r.b[n:], r.s[n:]
	return out
}

func (r *reader) str() string {
	n := r.uvarint()
	s := r.s
	if r.bytes(n) == nil {
		return ""
	}
	return s[:n]
}

func (r *reader) list(out []string) []string {
	out = out[:0]
	n := r.uvarint()
	if n > uint64(len(r.b)) { // each item takes at least one byte
		r.fail()
		return nil
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		out = append(out, r.str())
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func decodeCorrelation(body []byte, bodyStr string, c *Correlation) error {
	esc, reasons := c.Escalation, c.Reasons
	r := &reader{b: body, s: bodyStr}
	c.EntityID = r.str()
	c.Kind = r.str()
	c.Alerts = r.uvarint()
	c.RiskSum = r.uvarint()
	if b := r.bytes(1); b != nil {
		c.EntityScore = b[0]
	}
	if b := r.bytes(2); b != nil {
		c.Tactics = binary.LittleEndian.Uint16(b)
	}
	c.Rules = r.uvarint()
	c.DedupCount = r.uvarint()
	if b := r.bytes(1); b != nil {
		c.DedupFirst, c.Storm, c.Late = b[0]&corrDedupFirst != 0, b[0]&corrStorm != 0, b[0]&corrLate != 0
	}
	if b := r.bytes(8); b != nil {
		c.FirstSeen = int64(binary.LittleEndian.Uint64(b))
	}
	if b := r.bytes(8); b != nil {
		c.LastSeen = int64(binary.LittleEndian.Uint64(b))
	}
	c.IncidentID = r.str()
	c.Escalation = r.list(esc)
	c.Reasons = r.list(reasons)
	if r.err == nil && (len(r.b) != 0 || c.EntityScore > 100) {
		r.fail()
	}
	c.Set = r.err == nil
	return r.err
}

func appendList(dst []byte, tag byte, list []string) []byte {
	for _, s := range list {
		dst = appendString(dst, tag, s)
	}
	return dst
}

// Decode parses a payload into r, overwriting it. It reuses the capacity of
// r's lists, and every string of the record shares one copy of data: decode
// into a record the caller does not still hold values of.
func Decode(data []byte, r *Record) error {
	old := *r
	*r = Record{}
	if len(data) < 4 || data[0] != magic[0] || data[1] != magic[1] || data[2] != magic[2] {
		return fmt.Errorf("%w: no TRG header", ErrCorrupt)
	}
	if data[3] != Version {
		return fmt.Errorf("%w: payload version %d, this build reads version %d", ErrCorrupt, data[3], Version)
	}
	a := &r.Alert
	a.Tags, a.Fields = old.Alert.Tags[:0], old.Alert.Fields[:0]
	r.KB.Techniques, r.KB.Tactics, r.KB.Playbooks = old.KB.Techniques[:0], old.KB.Tactics[:0], old.KB.Playbooks[:0]
	r.KB.Mitigations, r.KB.D3FEND, r.Risk.Factors = old.KB.Mitigations[:0], old.KB.D3FEND[:0], old.Risk.Factors[:0]
	r.Corr.Escalation, r.Corr.Reasons = old.Corr.Escalation[:0], old.Corr.Reasons[:0]
	defer nilEmpty(r)
	all := string(data) // every string of the record is cut from this copy
	var seen uint16
	p := data[4:]
	for len(p) > 0 {
		tag := p[0]
		n, w := binary.Uvarint(p[1:])
		if w <= 0 || n > uint64(len(p)-1-w) {
			return fmt.Errorf("%w: bad length for section %d", ErrCorrupt, tag)
		}
		off := len(data) - len(p) + 1 + w
		body := p[1+w : 1+w+int(n)]
		str := all[off : off+int(n)]
		p = p[1+w+int(n):]
		if tag < 16 {
			seen |= 1 << tag
		}
		switch tag {
		case tagRule:
			a.Rule = str
		case tagPriority:
			if len(body) != 1 || !alert.Priority(body[0]).Valid() {
				return fmt.Errorf("%w: bad priority section", ErrCorrupt)
			}
			a.Priority = alert.Priority(body[0])
		case tagTime:
			if len(body) != 8 {
				return fmt.Errorf("%w: bad time section", ErrCorrupt)
			}
			a.Time = int64(binary.LittleEndian.Uint64(body))
		case tagSource:
			a.Source = str
		case tagHostname:
			a.Hostname = str
		case tagUUID:
			a.UUID = str
		case tagOutput:
			a.Output = str
		case tagTag:
			a.Tags = append(a.Tags, str)
		case tagField:
			f, err := decodeField(body, str)
			if err != nil {
				return err
			}
			a.Fields = append(a.Fields, f)
		case tagEnv:
			r.KB.Env = str
		case tagVia:
			r.KB.Via = str
		case tagTechnique:
			r.KB.Techniques = append(r.KB.Techniques, str)
		case tagTactic:
			r.KB.Tactics = append(r.KB.Tactics, str)
		case tagConflict:
			r.KB.Conflict = str
		case tagPlaybook:
			r.KB.Playbooks = append(r.KB.Playbooks, str)
		case tagMitigation:
			r.KB.Mitigations = append(r.KB.Mitigations, str)
		case tagD3FEND:
			r.KB.D3FEND = append(r.KB.D3FEND, str)
		case tagRiskScore:
			if len(body) != 1 || body[0] > 100 {
				return fmt.Errorf("%w: bad risk score section", ErrCorrupt)
			}
			r.Risk.Scored, r.Risk.Score = true, body[0]
		case tagRiskFactor:
			r.Risk.Factors = append(r.Risk.Factors, str)
		case tagCorrelation:
			if err := decodeCorrelation(body, str, &r.Corr); err != nil {
				return err
			}
		default:
			// a section from a newer writer: skip it
		}
	}
	const required = 1<<tagRule | 1<<tagPriority | 1<<tagTime
	if seen&required != required {
		return fmt.Errorf("%w: rule, priority or time section missing", ErrCorrupt)
	}
	return nil
}

func decodeField(body []byte, str string) (alert.Field, error) {
	kl, w := binary.Uvarint(body)
	if w <= 0 || kl > uint64(len(body)-w) || len(body)-w-int(kl) < 1 {
		return alert.Field{}, fmt.Errorf("%w: bad output field section", ErrCorrupt)
	}
	rest := body[w+int(kl):]
	kind := alert.Kind(rest[0])
	if kind > alert.KindObject {
		return alert.Field{}, fmt.Errorf("%w: bad output field kind %d", ErrCorrupt, rest[0])
	}
	return alert.Field{Key: str[w : w+int(kl)], Kind: kind, Value: str[w+int(kl)+1:]}, nil
}

// nilEmpty keeps "no list" as nil whatever capacity Decode reused.
func nilEmpty(r *Record) {
	for _, l := range []*[]string{&r.Alert.Tags, &r.KB.Techniques, &r.KB.Tactics, &r.KB.Playbooks, &r.KB.Mitigations,
		&r.KB.D3FEND, &r.Risk.Factors, &r.Corr.Escalation, &r.Corr.Reasons} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if len(r.Alert.Fields) == 0 {
		r.Alert.Fields = nil
	}
}

func appendString(dst []byte, tag byte, s string) []byte {
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendOptional(dst []byte, tag byte, s string) []byte {
	if s == "" {
		return dst
	}
	return appendString(dst, tag, s)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
