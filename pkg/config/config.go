// Package config holds triage's init configuration: defaults, parsing with
// errors that name the offending key, validation and the JSON schema Falco
// shows for init_config.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/invopop/jsonschema"
)

// DefaultPort is the webhook port used when open_params name none. It is
// not used by Falco's ecosystem (Falcosidekick 2801, its UI 2802, Talon
// 2803, k8saudit 9765, Falco's web server 8765).
const DefaultPort = 2810

// DefaultOpenParams is what an empty open_params means.
const DefaultOpenParams = "http://127.0.0.1:2810/alerts"

// Config is the plugin's init_config. Every key is optional.
type Config struct {
	QueueSize        int         `json:"queueSize" jsonschema:"title=Queue size,description=Alerts held between the inputs and Falco; a full queue makes the webhook answer 503 and file inputs wait,default=8192,minimum=16,maximum=1048576"`
	MaxEventBytes    int         `json:"maxEventBytes" jsonschema:"title=Maximum event size,description=Largest accepted alert in bytes (one JSON line); longer lines are skipped and counted,default=262144,minimum=1024,maximum=16777216"`
	BatchSize        int         `json:"batchSize" jsonschema:"title=Batch size,description=Most events returned to Falco per next_batch call,default=128,minimum=1,maximum=4096"`
	IdleTimeoutMs    int         `json:"idleTimeoutMs" jsonschema:"title=Idle timeout (ms),description=How long next_batch waits for an alert before returning a timeout to Falco,default=30,minimum=1,maximum=1000"`
	StatsIntervalSec int         `json:"statsIntervalSec" jsonschema:"title=Stats log interval (s),description=How often counters of received and dropped alerts are logged when they changed; 0 turns the periodic log off,default=60,minimum=0,maximum=86400"`
	Webhook          Webhook     `json:"webhook" jsonschema:"title=Webhook input"`
	Follow           Follow      `json:"follow" jsonschema:"title=File follow input"`
	Risk             Risk        `json:"risk" jsonschema:"title=Risk scoring"`
	Correlation      Correlation `json:"correlation" jsonschema:"title=Entity correlation"`
}

// Correlation configures per-entity state (docs/correlation.md).
type Correlation struct {
	WindowSec         int `json:"windowSec" jsonschema:"title=Window (s),description=Sliding window on alert time for alert counts, tactics, distinct rules, dedup and incidents,default=900,minimum=1,maximum=604800"`
	RiskWindowSec     int `json:"riskWindowSec" jsonschema:"title=Risk window (s),description=Sliding window on alert time for the entity's risk sum and score,default=86400,minimum=1,maximum=2592000"`
	OutOfOrderSec     int `json:"outOfOrderSec" jsonschema:"title=Out-of-order tolerance (s),description=Alerts up to this much older than the entity's newest are applied at their own time; older ones are enriched without changing state,default=60,minimum=0,maximum=86400"`
	MaxEntities       int `json:"maxEntities" jsonschema:"title=Maximum entities,description=Entities tracked at once; the least recently seen is evicted beyond it (counted and logged),default=100000,minimum=1,maximum=10000000"`
	MaxRulesPerEntity int `json:"maxRulesPerEntity" jsonschema:"title=Maximum rules per entity,description=Distinct rules remembered per entity; the least recently seen is dropped beyond it,default=64,minimum=1,maximum=4096"`
	TacticThreshold   int `json:"tacticThreshold" jsonschema:"title=Tactic threshold,description=Distinct tactics on one entity within the window that escalate it,default=3,minimum=2,maximum=14"`
	RiskThreshold     int `json:"riskThreshold" jsonschema:"title=Risk threshold,description=Sum of risk scores on one entity within the risk window that escalates it,default=250,minimum=1,maximum=1000000"`
	StormEvery        int `json:"stormEvery" jsonschema:"title=Storm summary interval,description=Every Nth repeat of one rule on one entity sets dedup.storm (0 turns it off),default=100,minimum=0,maximum=1000000"`
}

// Risk configures scoring: which namespaces count as critical and how
// critical each asset is (docs/risk-model.md).
type Risk struct {
	CriticalNamespaces   []string `json:"criticalNamespaces" jsonschema:"title=Critical namespaces,description=Kubernetes namespaces (glob patterns) whose alerts get the critical_namespace factor,default=kube-system"`
	DefaultCriticality   string   `json:"defaultCriticality" jsonschema:"title=Default asset criticality,description=Criticality of assets no pattern matches,enum=low,enum=medium,enum=high,enum=extreme,default=medium"`
	CustomRuleConfidence int      `json:"customRuleConfidence" jsonschema:"title=Custom rule confidence,description=Confidence (percent) for rules the knowledge base does not know,default=70,minimum=1,maximum=100"`
	Assets               []Asset  `json:"assets" jsonschema:"title=Asset criticality,description=Patterns naming assets and their criticality; the highest criticality among matching entries applies"`
}

// Asset gives a criticality to the hosts, namespaces, images and cloud
// accounts its glob patterns match.
type Asset struct {
	Hosts       []string `json:"hosts,omitempty" jsonschema:"description=Glob patterns for alert.hostname"`
	Namespaces  []string `json:"namespaces,omitempty" jsonschema:"description=Glob patterns for the Kubernetes namespace (k8s.ns.name or ka.target.namespace)"`
	Images      []string `json:"images,omitempty" jsonschema:"description=Glob patterns for the container image repository"`
	Accounts    []string `json:"accounts,omitempty" jsonschema:"description=Glob patterns for cloud accounts: AWS account ID, GCP project ID, GitHub organization"`
	Criticality string   `json:"criticality" jsonschema:"enum=low,enum=medium,enum=high,enum=extreme"`
}

// Webhook configures the http:// input.
type Webhook struct {
	MaxBodyBytes int `json:"maxBodyBytes" jsonschema:"title=Maximum body size,description=Largest accepted request body in bytes; larger bodies get 413,default=16777216,minimum=1024,maximum=1073741824"`
	// AllowNonLoopback exists because a webhook on all interfaces with no
	// authentication lets anyone inject alerts.
	AllowNonLoopback bool `json:"allowNonLoopback" jsonschema:"title=Allow non-loopback address,description=Allow the webhook to listen on an address other than loopback (no TLS or authentication yet: anyone who reaches the port can inject alerts),default=false"`
}

// Follow configures the file:// input.
type Follow struct {
	StartAt        string `json:"startAt" jsonschema:"title=Start position,description=end: only alerts appended after open (like tail -F -n0); beginning: the whole file first,enum=end,enum=beginning,default=end"`
	PollIntervalMs int    `json:"pollIntervalMs" jsonschema:"title=Poll interval (ms),description=Safety-net interval for noticing appends and rotation when file notifications are silent,default=250,minimum=10,maximum=60000"`
}

// Reset sets every key to its default. Defaults live here and nowhere else.
func (c *Config) Reset() {
	*c = Config{
		QueueSize:        8192,
		MaxEventBytes:    256 * 1024,
		BatchSize:        128,
		IdleTimeoutMs:    30,
		StatsIntervalSec: 60,
		Webhook: Webhook{
			MaxBodyBytes:     16 * 1024 * 1024,
			AllowNonLoopback: false,
		},
		Follow: Follow{
			StartAt:        "end",
			PollIntervalMs: 250,
		},
		Risk: Risk{
			CriticalNamespaces:   []string{"kube-system"},
			DefaultCriticality:   "medium",
			CustomRuleConfidence: 70,
		},
		Correlation: Correlation{
			WindowSec:         900,
			RiskWindowSec:     86400,
			OutOfOrderSec:     60,
			MaxEntities:       100000,
			MaxRulesPerEntity: 64,
			TacticThreshold:   3,
			RiskThreshold:     250,
			StormEvery:        100,
		},
	}
}

// Default returns the default configuration.
func Default() Config {
	var c Config
	c.Reset()
	return c
}

// Parse reads an init_config string. Empty means all defaults. Unknown
// keys, wrong types and out-of-range values are errors naming the key.
func Parse(s string) (Config, error) {
	c := Default()
	if strings.TrimSpace(s) == "" {
		return c, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, describeDecodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("init_config: unexpected data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func describeDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		key := typeErr.Field
		if key == "" {
			return fmt.Errorf("init_config: must be a JSON object, got %s", typeErr.Value)
		}
		return fmt.Errorf("init_config: key %q: want %s, got %s", key, jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("init_config: malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return errors.New("init_config: malformed JSON: unexpected end of input")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("init_config: unknown key %s (see the README for the supported keys)", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return fmt.Errorf("init_config: %v", err)
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "int", "int64", "uint64":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "struct":
		return "an object"
	}
	return goKind
}

type intRange struct {
	key      string
	val      int
	min, max int
}

// Validate checks every value and names the first bad key.
func (c *Config) Validate() error {
	for _, r := range []intRange{
		{"queueSize", c.QueueSize, 16, 1 << 20},
		{"maxEventBytes", c.MaxEventBytes, 1024, 16 << 20},
		{"batchSize", c.BatchSize, 1, 4096},
		{"idleTimeoutMs", c.IdleTimeoutMs, 1, 1000},
		{"statsIntervalSec", c.StatsIntervalSec, 0, 86400},
		{"webhook.maxBodyBytes", c.Webhook.MaxBodyBytes, 1024, 1 << 30},
		{"follow.pollIntervalMs", c.Follow.PollIntervalMs, 10, 60000},
		{"correlation.windowSec", c.Correlation.WindowSec, 1, 604800},
		{"correlation.riskWindowSec", c.Correlation.RiskWindowSec, 1, 2592000},
		{"correlation.outOfOrderSec", c.Correlation.OutOfOrderSec, 0, 86400},
		{"correlation.maxEntities", c.Correlation.MaxEntities, 1, 10000000},
		{"correlation.maxRulesPerEntity", c.Correlation.MaxRulesPerEntity, 1, 4096},
		{"correlation.tacticThreshold", c.Correlation.TacticThreshold, 2, 14},
		{"correlation.riskThreshold", c.Correlation.RiskThreshold, 1, 1000000},
		{"correlation.stormEvery", c.Correlation.StormEvery, 0, 1000000},
	} {
		if r.val < r.min || r.val > r.max {
			return fmt.Errorf("init_config: key %q: %d is out of range [%d, %d]", r.key, r.val, r.min, r.max)
		}
	}
	if c.Webhook.MaxBodyBytes < c.MaxEventBytes {
		return fmt.Errorf("init_config: key \"webhook.maxBodyBytes\": %d is smaller than maxEventBytes (%d), so the largest alert could never be posted", c.Webhook.MaxBodyBytes, c.MaxEventBytes)
	}
	switch c.Follow.StartAt {
	case "end", "beginning":
	default:
		return fmt.Errorf("init_config: key \"follow.startAt\": %q is not one of end, beginning", c.Follow.StartAt)
	}
	return c.Risk.validate()
}

// Criticalities are the asset criticality levels, lowest first.
var Criticalities = []string{"low", "medium", "high", "extreme"}

func validCriticality(s string) bool {
	for _, c := range Criticalities {
		if c == s {
			return true
		}
	}
	return false
}

func (r *Risk) validate() error {
	if !validCriticality(r.DefaultCriticality) {
		return fmt.Errorf("init_config: key \"risk.defaultCriticality\": %q is not one of %s", r.DefaultCriticality, strings.Join(Criticalities, ", "))
	}
	if r.CustomRuleConfidence < 1 || r.CustomRuleConfidence > 100 {
		return fmt.Errorf("init_config: key \"risk.customRuleConfidence\": %d is out of range [1, 100]", r.CustomRuleConfidence)
	}
	if err := checkPatterns("risk.criticalNamespaces", r.CriticalNamespaces); err != nil {
		return err
	}
	for i, a := range r.Assets {
		key := fmt.Sprintf("risk.assets[%d]", i)
		if !validCriticality(a.Criticality) {
			return fmt.Errorf("init_config: key %q: criticality %q is not one of %s", key+".criticality", a.Criticality, strings.Join(Criticalities, ", "))
		}
		if len(a.Hosts)+len(a.Namespaces)+len(a.Images)+len(a.Accounts) == 0 {
			return fmt.Errorf("init_config: key %q: give at least one of hosts, namespaces, images, accounts", key)
		}
		for _, f := range []struct {
			name string
			pats []string
		}{{"hosts", a.Hosts}, {"namespaces", a.Namespaces}, {"images", a.Images}, {"accounts", a.Accounts}} {
			if err := checkPatterns(key+"."+f.name, f.pats); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkPatterns(key string, pats []string) error {
	for _, p := range pats {
		if p == "" {
			return fmt.Errorf("init_config: key %q: empty pattern", key)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("init_config: key %q: bad glob pattern %q: %v", key, p, err)
		}
	}
	return nil
}

// Schema returns the JSON schema of Config, generated from its tags.
func Schema() (string, error) {
	r := jsonschema.Reflector{
		DoNotReference:             true,
		ExpandedStruct:             true,
		AllowAdditionalProperties:  false,
		RequiredFromJSONSchemaTags: true,
	}
	s := r.Reflect(&Config{})
	s.Version = "" // Falco validates with draft-04-era tooling; the $schema URL is noise
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return "", err
	}
	return out.String(), nil
}
