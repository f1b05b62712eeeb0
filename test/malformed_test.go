package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const okAlert = `{"rule":"ok","priority":"Notice","time":"2026-11-21T04:45:00Z","source":"syscall"}`

// withKey returns okAlert with one key replaced or added (raw JSON value).
func withKey(key, raw string) string {
	base := map[string]string{"rule": `"ok"`, "priority": `"Notice"`, "time": `"2026-11-21T04:45:00Z"`, "source": `"syscall"`}
	if raw == "" {
		delete(base, key)
	} else {
		base[key] = raw
	}
	var parts []string
	for _, k := range []string{"rule", "priority", "time", "source", "hostname", "tags", "output_fields", "uuid", "output"} {
		if v, ok := base[k]; ok {
			parts = append(parts, fmt.Sprintf("%q:%s", k, v))
		}
	}
	for k, v := range base {
		switch k {
		case "rule", "priority", "time", "source", "hostname", "tags", "output_fields", "uuid", "output":
		default:
			parts = append(parts, fmt.Sprintf("%q:%s", k, v))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

type badInput struct {
	name        string
	method      string
	path        string
	contentType string
	body        string
	status      int
	mention     string
	delivered   int // events that must reach Falco
}

// The documented outcome of each malformed or unusual input (README,
// "Webhook protocol" and "Alerts").
func badInputs() []badInput {
	huge := `{"rule":"` + strings.Repeat("A", 3000) + `","priority":"Notice","time":"2026-11-21T04:45:00Z"}`
	var overBody strings.Builder
	for overBody.Len() <= 8192 {
		overBody.WriteString(okAlert + "\n")
	}
	c := func(name, body string, status int, mention string) badInput {
		return badInput{name: name, method: "POST", contentType: "application/json", body: body, status: status, mention: mention}
	}
	return []badInput{
		c("bad JSON", `{`, 400, "malformed JSON"),
		c("truncated object", `{"rule":"r","priority":"Notice"`, 400, "malformed JSON"),
		c("plain text", `hello`, 400, "malformed JSON"),
		c("JSON array", `[`+okAlert+`]`, 400, "object"),
		c("JSON string", `"alert"`, 400, "object"),
		c("JSON number", `42`, 400, "object"),
		c("JSON null", `null`, 400, "object"),
		c("missing rule", withKey("rule", ""), 400, `"rule"`),
		c("missing priority", withKey("priority", ""), 400, `"priority"`),
		c("missing time", withKey("time", ""), 400, `"time"`),
		c("null rule", withKey("rule", "null"), 400, `"rule"`),
		c("empty rule", withKey("rule", `""`), 400, `"rule"`),
		c("rule is a number", withKey("rule", "7"), 400, `"rule"`),
		c("priority is a number", withKey("priority", "3"), 400, `"priority"`),
		c("unknown priority", withKey("priority", `"Severe"`), 400, "Severe"),
		c("time is a number", withKey("time", "1795236300"), 400, `"time"`),
		c("time not RFC 3339", withKey("time", `"yesterday"`), 400, "RFC 3339"),
		c("time with 10 fraction digits", withKey("time", `"2026-11-21T04:45:00.1234567890Z"`), 400, "fraction"),
		c("time before 1970", withKey("time", `"1969-07-20T20:17:00Z"`), 400, "out of range"),
		c("tags is a string", withKey("tags", `"T1059"`), 400, "tags"),
		c("tag is a number", withKey("tags", `["a",1]`), 400, "tags[1]"),
		c("output_fields is an array", withKey("output_fields", `[1,2]`), 400, "output_fields"),
		c("output_fields is a string", withKey("output_fields", `"x"`), 400, "output_fields"),
		c("hostname is a number", withKey("hostname", "1"), 400, "hostname"),
		c("source is a bool", withKey("source", "true"), 400, "source"),
		c("uuid is a number", withKey("uuid", "5"), 400, "uuid"),
		c("output is an object", withKey("output", `{}`), 400, "output"),
		c("trailing garbage", okAlert+` x`, 400, "malformed JSON"),
		c("one bad line in NDJSON", okAlert+"\n{\n"+okAlert, 400, "line 2"),
		c("empty body", ``, 400, "empty body"),
		c("whitespace body", " \n\t ", 400, "empty body"),
		c("deeply nested", strings.Repeat("[", 2000), 400, "malformed JSON"),
		c("byte order mark", "\xef\xbb\xbf"+okAlert, 400, "malformed JSON"),
		c("alert over maxEventBytes", huge, 413, "maxEventBytes"),
		c("body over maxBodyBytes", overBody.String(), 413, "limit"),
		{name: "GET", method: "GET", contentType: "", body: "", status: 405, mention: "POST or PUT"},
		{name: "PATCH", method: "PATCH", contentType: "application/json", body: okAlert, status: 405, mention: "POST or PUT"},
		{name: "form content type", method: "POST", contentType: "application/x-www-form-urlencoded", body: okAlert, status: 415, mention: "content type"},
		{name: "XML content type", method: "POST", contentType: "application/xml", body: okAlert, status: 415, mention: "content type"},
		{name: "wrong path", method: "POST", path: "/other", contentType: "application/json", body: okAlert, status: 404, mention: "/alerts"},
		// Accepted, with the documented normalization:
		{name: "invalid UTF-8 is replaced", method: "POST", contentType: "application/json", body: withKey("rule", "\"bad\xff\xfe\""), status: 200, mention: "accepted", delivered: 1},
		{name: "NUL escaped in a string", method: "POST", contentType: "application/json", body: withKey("output", `"a\u0000b"`), status: 200, mention: "accepted", delivered: 1},
		{name: "duplicate keys: first wins", method: "POST", contentType: "application/json", body: `{"rule":"first","rule":"second","priority":"Notice","time":"2026-11-21T04:45:00Z"}`, status: 200, mention: "accepted", delivered: 1},
		{name: "no content type", method: "POST", contentType: "", body: okAlert, status: 200, mention: "accepted", delivered: 1},
		{name: "loop guard", method: "POST", contentType: "application/json", body: withKey("source", `"falco_alert"`), status: 200, mention: `"loop_dropped":1`},
	}
}

func TestMalformedWebhookInputs(t *testing.T) {
	w := openWebhook(t, `{"maxEventBytes": 2048, "webhook": {"maxBodyBytes": 8192}}`)
	base := strings.TrimSuffix(w.url, "/alerts")
	cases := badInputs()
	require.GreaterOrEqual(t, len(cases), 30)
	want := 0
	for _, c := range cases {
		url := w.url
		if c.path != "" {
			url = base + c.path
		}
		code, body := send(t, c.method, url, c.contentType, c.body)
		assert.Equal(t, c.status, code, "%s: %s", c.name, body)
		assert.Contains(t, body, c.mention, c.name)
		want += c.delivered
	}
	// The plugin is still alive and delivered exactly the accepted alerts.
	code, _ := send(t, "POST", w.url, "application/json", withKey("rule", `"after all that"`))
	require.Equal(t, 200, code)
	want++
	evts := w.collect(t, want)
	require.Len(t, evts, want)
	assert.Equal(t, "bad\uFFFD", ruleOf(t, w.p, evts[0], "alert.rule"))
	assert.Equal(t, "first", ruleOf(t, w.p, evts[2], "alert.rule"))
	assert.Equal(t, "after all that", ruleOf(t, w.p, evts[want-1], "alert.rule"))
	more, _, err := w.inst.NextBatch()
	require.NoError(t, err)
	assert.Empty(t, more)
}

// The same kinds of bad lines in a file read once: skipped (logged with
// their line numbers), the good ones delivered, then EOF.
func TestMalformedFileLines(t *testing.T) {
	var lines []string
	good := 0
	for i, c := range badInputs() {
		if c.method != "POST" || c.path != "" || c.contentType != "application/json" || strings.Contains(c.body, "\n") || c.body == "" {
			continue
		}
		lines = append(lines, c.body)
		good += c.delivered
		if i%5 == 0 {
			lines = append(lines, withKey("rule", fmt.Sprintf(`"good %d"`, i)))
			good++
		}
	}
	lines = append(lines, strings.Repeat("x", 5000)) // over maxEventBytes, not even JSON
	lines = append(lines, withKey("rule", `"last"`))
	good++
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600))

	p := newPlugin(t, `{"maxEventBytes": 2048}`)
	evts := replayFile(t, p, path)
	require.Len(t, evts, good)
	assert.Equal(t, "last", ruleOf(t, p, evts[len(evts)-1], "alert.rule"))
}
