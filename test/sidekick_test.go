package test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// Falcosidekick's webhook output (outputs/webhook.go and outputs/client.go in
// falcosecurity/falcosidekick) sends one alert per request: POST, or PUT with
// webhook.method: PUT; Content-Type "application/json; charset=utf-8";
// User-Agent "Falcosidekick"; a body written by encoding/json's Encoder, so:
//   - keys in the order of its FalcoPayload struct: uuid, output, priority,
//     rule, time, output_fields, source, tags, hostname (tags and hostname
//     omitted when empty);
//   - priority in Falco's casing (its PriorityType marshals that way);
//   - time as time.Time marshals it: RFC 3339 with the fraction's trailing
//     zeros trimmed (".123450000" becomes ".12345", ".000000000" disappears);
//   - output_fields keys sorted byte-wise (a Go map), numbers exactly as Falco
//     wrote them (it decodes with UseNumber), null kept;
//   - tags sorted (it sorts them on arrival);
//   - <, > and & escaped as \u003c, \u003e, \u0026 (Encoder's HTML escaping);
//   - a trailing newline (Encoder.Encode).
// Its bracketreplacer option rewrites output_fields keys before any output:
// every "]" removed, every "[" replaced, so with "_" proc.aname[2] becomes
// proc.aname_2. Its customfields are added to output_fields.
//
// The bodies below are written by hand in that exact form.

const sidekickContentType = "application/json; charset=utf-8"

// A syscall alert from a pod, customfields environment=prod, as POSTed.
const sidekickSyscallBody = `{"uuid":"5d1b0f4e-8a57-4c1e-9d6b-0c3f2e7a9b14","output":"2026-11-21T04:45:07.123450000+0000: Critical Fileless execution via memfd_create (proc_exepath=memfd:x parent=\u003cNA\u003e command=sh -c curl http://x \u0026\u0026 run container_id=0123456789ab)","priority":"Critical","rule":"Fileless execution via memfd_create","time":"2026-11-21T04:45:07.12345Z","output_fields":{"container.id":"0123456789ab","container.image.repository":"ghcr.io/acme/api","environment":"prod","evt.rawres":-2,"evt.time":1795236307123450000,"evt.type":"execve","fd.sport":null,"k8s.ns.name":"payments","k8s.pod.name":"api-7d9f","proc.aname[2]":"containerd-shim","proc.cmdline":"sh -c curl http://x \u0026\u0026 run","proc.exepath":"memfd:x","proc.is_exe_from_memfd":true,"user.uid":0},"source":"syscall","tags":["T1620","container","maturity_stable","mitre_defense_evasion","process"],"hostname":"node-7"}
`

// A k8s_audit alert with a whole-second time (fraction trimmed away) and no
// hostname (omitted when empty), as PUT with webhook.method: PUT.
const sidekickAuditBody = `{"uuid":"9e0c4b7a-1f2d-4e3a-8b5c-6d7e8f9a0b1c","output":"04:46:00.000000000: Notice Attach/Exec to pod (user=mallory pod=api-7d9f ns=payments action=exec command=sh)","priority":"Notice","rule":"Attach/Exec Pod","time":"2026-11-21T04:46:00Z","output_fields":{"ka.target.name":"api-7d9f","ka.target.namespace":"payments","ka.uri":"/api/v1/namespaces/payments/pods/api-7d9f/exec?command=sh\u0026stdin=true","ka.user.name":"mallory","ka.verb":"create"},"source":"k8s_audit","tags":["T1609","k8s","maturity_stable","mitre_execution"]}
`

// The same kind of syscall alert from a Falcosidekick with bracketreplacer
// "_": proc.aname[2] arrives as proc.aname_2 (still sorted before
// proc.cmdline).
const sidekickBracketBody = `{"uuid":"0b6f7c3e-2d4a-4f19-a8e5-3c9d1e2f4a6b","output":"2026-11-21T04:45:09.500000000+0000: Critical Drop and execute new binary in container (proc_exepath=/tmp/x parent=bash)","priority":"Critical","rule":"Drop and execute new binary in container","time":"2026-11-21T04:45:09.5Z","output_fields":{"container.id":"0123456789ab","proc.aname_2":"bash","proc.cmdline":"x","proc.exepath":"/tmp/x","proc.is_exe_upper_layer":true},"source":"syscall","tags":["T1059","container","maturity_stable","mitre_execution","process"],"hostname":"node-7"}
`

// triage's own alert coming back through Falcosidekick (central deployment
// where the triage Falco also posts to Falcosidekick): the loop guard drops it.
const sidekickLoopBody = `{"uuid":"7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d","output":"04:45:07.123450000: Critical Critical risk 100 from \"Fileless execution via memfd_create\" on pod:payments/api-7d9f | risk.score=100","priority":"Critical","rule":"Triage critical risk alert","time":"2026-11-21T04:45:07.2Z","output_fields":{"entity.id":"pod:payments/api-7d9f","risk.level":"critical","risk.score":100},"source":"falco_alert","tags":["maturity_incubating","risk","triage"],"hostname":"triage-central"}
`

type sidekickWant struct {
	rule, priority  string
	rank            uint64
	source          string
	hostname, uuid  string // "" = no value
	output          string
	time            time.Time
	tags            []string
	fields          map[string]string // alert.field[KEY] = value
	noValue         []string          // alert.field[KEY] that must have no value
	extraFieldsWant map[string]string // other string fields worth pinning
}

var sidekickWants = []sidekickWant{
	{
		rule: "Fileless execution via memfd_create", priority: "Critical", rank: 5, source: "syscall",
		hostname: "node-7", uuid: "5d1b0f4e-8a57-4c1e-9d6b-0c3f2e7a9b14",
		output: "2026-11-21T04:45:07.123450000+0000: Critical Fileless execution via memfd_create (proc_exepath=memfd:x parent=<NA> command=sh -c curl http://x && run container_id=0123456789ab)",
		time:   time.Date(2026, 11, 21, 4, 45, 7, 123450000, time.UTC),
		tags:   []string{"T1620", "container", "maturity_stable", "mitre_defense_evasion", "process"},
		fields: map[string]string{
			"container.id": "0123456789ab", "container.image.repository": "ghcr.io/acme/api",
			"environment": "prod", "evt.rawres": "-2", "evt.time": "1795236307123450000",
			"evt.type": "execve", "k8s.ns.name": "payments", "k8s.pod.name": "api-7d9f",
			"proc.aname[2]": "containerd-shim", "proc.cmdline": "sh -c curl http://x && run",
			"proc.exepath": "memfd:x", "proc.is_exe_from_memfd": "true", "user.uid": "0",
		},
		noValue: []string{"fd.sport", "proc.aname_2"},
		// The pod from output_fields is the entity (README: pod:NS/POD).
		extraFieldsWant: map[string]string{"entity.id": "pod:payments/api-7d9f"},
	},
	{
		rule: "Attach/Exec Pod", priority: "Notice", rank: 2, source: "k8s_audit",
		uuid:   "9e0c4b7a-1f2d-4e3a-8b5c-6d7e8f9a0b1c",
		output: "04:46:00.000000000: Notice Attach/Exec to pod (user=mallory pod=api-7d9f ns=payments action=exec command=sh)",
		time:   time.Date(2026, 11, 21, 4, 46, 0, 0, time.UTC),
		tags:   []string{"T1609", "k8s", "maturity_stable", "mitre_execution"},
		fields: map[string]string{
			"ka.target.name": "api-7d9f", "ka.target.namespace": "payments",
			"ka.uri":       "/api/v1/namespaces/payments/pods/api-7d9f/exec?command=sh&stdin=true",
			"ka.user.name": "mallory", "ka.verb": "create",
		},
	},
	{
		rule: "Drop and execute new binary in container", priority: "Critical", rank: 5, source: "syscall",
		hostname: "node-7", uuid: "0b6f7c3e-2d4a-4f19-a8e5-3c9d1e2f4a6b",
		output: "2026-11-21T04:45:09.500000000+0000: Critical Drop and execute new binary in container (proc_exepath=/tmp/x parent=bash)",
		time:   time.Date(2026, 11, 21, 4, 45, 9, 500000000, time.UTC),
		tags:   []string{"T1059", "container", "maturity_stable", "mitre_execution", "process"},
		fields: map[string]string{
			"container.id": "0123456789ab", "proc.aname_2": "bash", "proc.cmdline": "x",
			"proc.exepath": "/tmp/x", "proc.is_exe_upper_layer": "true",
		},
		// The rewritten key answers; the original bracketed one does not exist.
		noValue: []string{"proc.aname[2]"},
	},
}

// Falcosidekick's requests, replayed byte for byte through the real plugin's
// webhook: every alert.* field comes out as Falco wrote it, keys rewritten by
// bracketreplacer answer under their new name, triage's own alert is dropped
// by the loop guard, and nothing else arrives.
func TestSidekickWebhookReplay(t *testing.T) {
	w := openWebhook(t, "")
	for _, req := range []struct {
		method, body, response string
	}{
		{"POST", sidekickSyscallBody, `{"accepted":1,"loop_dropped":0}`},
		{"PUT", sidekickAuditBody, `{"accepted":1,"loop_dropped":0}`},
		{"POST", sidekickBracketBody, `{"accepted":1,"loop_dropped":0}`},
		{"POST", sidekickLoopBody, `{"accepted":0,"loop_dropped":1}`},
	} {
		code, body := send(t, req.method, w.url, sidekickContentType, req.body, "User-Agent", "Falcosidekick")
		require.Equal(t, 200, code, "%s: %s", req.method, body)
		assert.JSONEq(t, req.response, body)
	}

	evts := w.collect(t, len(sidekickWants))
	require.Len(t, evts, len(sidekickWants), "three alerts accepted, the looped one dropped")
	for i, want := range sidekickWants {
		checkSidekickAlert(t, w.p, evts[i], want)
	}

	more, rc, err := w.inst.NextBatch()
	require.NoError(t, err)
	assert.Equal(t, harness.Timeout, rc, "nothing after the three alerts")
	assert.Empty(t, more)
}

func checkSidekickAlert(t *testing.T, p *harness.Plugin, e *harness.Event, want sidekickWant) {
	t.Helper()
	got := map[string]harness.Value{}
	reqs := allAlertRequests()
	vals, err := p.Extract(e, reqs...)
	require.NoError(t, err)
	for i, r := range reqs {
		got[r.Field] = vals[i]
	}
	str := func(field, w string) {
		t.Helper()
		if w == "" {
			assert.False(t, got[field].Present, "%s: %s should have no value", want.rule, field)
			return
		}
		assert.Equal(t, []string{w}, got[field].Str, "%s: %s", want.rule, field)
	}
	str("alert.rule", want.rule)
	str("alert.priority", want.priority)
	str("alert.source", want.source)
	str("alert.hostname", want.hostname)
	str("alert.uuid", want.uuid)
	str("alert.output", want.output)
	assert.Equal(t, []uint64{want.rank}, got["alert.priority.rank"].U64, "%s: alert.priority.rank", want.rule)
	assert.Equal(t, []uint64{uint64(want.time.UnixNano())}, got["alert.time"].U64, "%s: alert.time", want.rule)
	assert.Equal(t, uint64(want.time.UnixNano()), e.Timestamp, "%s: event time is the alert time", want.rule)
	assert.True(t, got["alert.tags"].IsList, "%s: alert.tags is a list", want.rule)
	assert.Equal(t, want.tags, got["alert.tags"].Str, "%s: alert.tags", want.rule)

	// One call per key, as libsinsp's filterchecks do.
	for key, w := range want.fields {
		v, err := p.ExtractEach(e, harness.Request{Field: "alert.field", Arg: key})
		require.NoError(t, err, key)
		assert.Equal(t, []string{w}, v[0].Str, "%s: alert.field[%s]", want.rule, key)
	}
	for _, key := range want.noValue {
		v, err := p.ExtractEach(e, harness.Request{Field: "alert.field", Arg: key})
		require.NoError(t, err, key)
		assert.False(t, v[0].Present, "%s: alert.field[%s] should have no value", want.rule, key)
	}
	for field, w := range want.extraFieldsWant {
		v, err := p.Extract(e, harness.Request{Field: field})
		require.NoError(t, err, field)
		assert.Equal(t, []string{w}, v[0].Str, "%s: %s", want.rule, field)
	}
}
