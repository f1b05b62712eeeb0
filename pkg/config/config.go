// Package config holds triage's init configuration: defaults, parsing with
// errors that name the offending key, validation and the JSON schema Falco
// shows for init_config.
package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
)

// DefaultPort is the webhook port used when open_params name none. It is
// not used by Falco's ecosystem (Falcosidekick 2801 and its TLS server's
// plain side port 2810, its UI 2802, Talon 2803, k8saudit 9765, Falco's web
// server 8765).
const DefaultPort = 2820

// DefaultOpenParams is what an empty open_params means.
const DefaultOpenParams = "http://127.0.0.1:2820/alerts"

// Config is the plugin's init_config. Every key is optional.
type Config struct {
	QueueSize        int         `json:"queueSize" jsonschema:"title=Queue size,description=Alerts held between the inputs and Falco; a full queue makes the webhook hold requests (webhook.maxHoldMs) and file inputs wait; a body with more alerts gets 413,default=8192,minimum=16,maximum=1048576"`
	QueueBytes       int         `json:"queueBytes" jsonschema:"title=Queue bytes,description=Memory the queued alerts may take (bytes; an alert counts its strings and field headers); with queueSize it bounds the queue. A single alert larger than it still passes an empty queue,default=67108864,minimum=1048576,maximum=17179869184"`
	MaxEventBytes    int         `json:"maxEventBytes" jsonschema:"title=Maximum event size,description=Largest accepted alert in bytes (one JSON line); longer lines are skipped and counted,default=262144,minimum=1024,maximum=16777216"`
	BatchSize        int         `json:"batchSize" jsonschema:"title=Batch size,description=Most events returned to Falco per next_batch call,default=128,minimum=1,maximum=4096"`
	IdleTimeoutMs    int         `json:"idleTimeoutMs" jsonschema:"title=Idle timeout (ms),description=How long next_batch waits for an alert before returning a timeout to Falco,default=30,minimum=1,maximum=1000"`
	StatsIntervalSec int         `json:"statsIntervalSec" jsonschema:"title=Stats log interval (s),description=How often counters of received and dropped alerts are logged when they changed; 0 turns the periodic log off,default=60,minimum=0,maximum=86400"`
	MemoryLimitMiB   int         `json:"memoryLimitMiB" jsonschema:"title=Memory limit (MiB),description=Soft limit of the plugin's Go runtime (runtime/debug.SetMemoryLimit): its garbage collector works harder rather than let the heap grow past it. 0: derived from correlation.maxEntities (max(128; 40 + 128 B per entity) MiB) unless GOMEMLIMIT is set; -1: no limit (Go's default: the heap grows to twice the live data),default=0,minimum=-1,maximum=1048576"`
	UseAsync         bool        `json:"useAsync" jsonschema:"title=Async field extraction,description=Use plugin-sdk-go's async extraction: a worker goroutine busy-waits for Falco's extract requests (only with more than one CPU). Off by default because on small hosts the spinning worker took CPU from the webhook and Falco and lowered throughput (docs/performance.md),default=false"`
	Webhook          Webhook     `json:"webhook" jsonschema:"title=Webhook input"`
	Follow           Follow      `json:"follow" jsonschema:"title=File follow input"`
	Spill            Spill       `json:"spill" jsonschema:"title=Webhook spill to disk"`
	Risk             Risk        `json:"risk" jsonschema:"title=Risk scoring"`
	Correlation      Correlation `json:"correlation" jsonschema:"title=Entity correlation"`
	Kafka            Kafka       `json:"kafka" jsonschema:"title=Kafka input (kafka:// open_params) and triage route"`

	// Notes are what Parse had to interpret (numbers given for strings);
	// the plugin logs them at init.
	Notes []string `json:"-"`
}

// Correlation configures per-entity state (docs/correlation.md).
type Correlation struct {
	WindowSec         int `json:"windowSec" jsonschema:"title=Window (s),description=Sliding window on alert time for alert counts, tactics, distinct rules, dedup and incidents,default=900,minimum=1,maximum=604800"`
	RiskWindowSec     int `json:"riskWindowSec" jsonschema:"title=Risk window (s),description=Sliding window on alert time for the entity's risk sum and score,default=86400,minimum=1,maximum=2592000"`
	OutOfOrderSec     int `json:"outOfOrderSec" jsonschema:"title=Out-of-order tolerance (s),description=Alerts more than this much older than their entity's newest alert are flagged entity.late and counted; every alert is still applied at its own time (up to the longer window back) and arrival order never takes away its dedup.first,default=60,minimum=0,maximum=86400"`
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
	// Drills: detection-testing tools whose alerts are capped (drills.go).
	BuiltinDrills []string     `json:"builtinDrills" jsonschema:"title=Built-in drill actors,description=Detection-testing tools triage recognises out of the box (event-generator and atomic-red-team); list fewer to stop recognising one and [] for none,default=event-generator,default=atomic-red-team"`
	Drills        []DrillActor `json:"drills" jsonschema:"title=Drill actors,description=More detection-testing tools: each by container image or by ancestor process name confirmed by the ancestor's executable path or a command line (docs/risk-model.md)"`
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

// Webhook configures the http:// and https:// input.
type Webhook struct {
	MaxBodyBytes int `json:"maxBodyBytes" jsonschema:"title=Maximum body size,description=Largest accepted request body in bytes; larger bodies get 413,default=16777216,minimum=1024,maximum=1073741824"`
	// AllowNonLoopback exists because a webhook on all interfaces with
	// neither TLS nor a shared secret lets anyone inject alerts.
	AllowNonLoopback    bool   `json:"allowNonLoopback" jsonschema:"title=Allow non-loopback address without protection,description=Allow the webhook to listen on an address other than loopback even with neither TLS nor a shared secret configured (then anyone who reaches the port can inject alerts),default=false"`
	TLSCertFile         string `json:"tlsCertFile" jsonschema:"title=TLS certificate file,description=PEM certificate chain of the webhook server; required for https:// open_params and needs tlsKeyFile,default="`
	TLSKeyFile          string `json:"tlsKeyFile" jsonschema:"title=TLS key file,description=PEM private key matching tlsCertFile,default="`
	TLSClientCAFile     string `json:"tlsClientCAFile" jsonschema:"title=TLS client CA file,description=PEM CA certificates; when set every client must present a certificate signed by one of them (mutual TLS),default="`
	SecretHeader        string `json:"secretHeader" jsonschema:"title=Shared-secret header,description=Request header that must carry the secret of secretFile (used only when secretFile is set),default=X-Triage-Secret"`
	SecretFile          string `json:"secretFile" jsonschema:"title=Shared-secret file,description=File holding the shared secret (surrounding whitespace ignored); when set requests without the exact secret in secretHeader get 401,default="`
	ReadHeaderTimeoutMs int    `json:"readHeaderTimeoutMs" jsonschema:"title=Header read timeout (ms),description=Time a client has to send the request headers (and the TLS handshake) before the connection is closed,default=10000,minimum=100,maximum=600000"`
	ReadTimeoutMs       int    `json:"readTimeoutMs" jsonschema:"title=Request read timeout (ms),description=Time a client has to send a whole request (headers and body),default=60000,minimum=100,maximum=3600000"`
	IdleTimeoutMs       int    `json:"idleTimeoutMs" jsonschema:"title=Idle connection timeout (ms),description=How long a kept-alive connection may wait for its next request,default=120000,minimum=100,maximum=3600000"`
	MaxConnections      int    `json:"maxConnections" jsonschema:"title=Maximum connections,description=Client connections served at once; at the cap a new connection closes the one idle the longest (or silent for 1 s since it connected) and waits only when every connection is in the middle of a request,default=256,minimum=1,maximum=65536"`
	Metrics             bool   `json:"metrics" jsonschema:"title=Prometheus metrics,description=Serve the input counters in Prometheus text format at /metrics on the webhook server (GET; the same TLS and secret apply),default=false"`
	// MaxHoldMs and MaxInflightBytes: a request whose alerts do not fit the
	// queue is held (Falco's http_output and Falcosidekick wait behind it
	// without loss) instead of answered 503, which both senders drop.
	MaxHoldMs        int `json:"maxHoldMs" jsonschema:"title=Maximum hold (ms),description=How long a request whose alerts do not fit the queue is held waiting for room before it is answered 503 (which Falco's http_output and Falcosidekick do not resend); 0 answers 503 at once,default=30000,minimum=0,maximum=600000"`
	MaxInflightBytes int `json:"maxInflightBytes" jsonschema:"title=Maximum in-flight bytes,description=Memory all request bodies being read or held may take together (their parsed alerts and buffers); further requests wait for it while held,default=67108864,minimum=1048576,maximum=17179869184"`
}

// SecretConfigured reports whether a shared secret is required.
func (w *Webhook) SecretConfigured() bool { return w.SecretFile != "" }

// TLSConfigured reports whether the webhook serves TLS.
func (w *Webhook) TLSConfigured() bool { return w.TLSCertFile != "" }

// Follow configures the file:// input.
type Follow struct {
	StartAt        string `json:"startAt" jsonschema:"title=Start position,description=end: only alerts appended after open (like tail -F -n0); beginning: the whole file first,enum=end,enum=beginning,default=end"`
	PollIntervalMs int    `json:"pollIntervalMs" jsonschema:"title=Poll interval (ms),description=Safety-net interval for noticing appends and rotation when file notifications are silent,default=250,minimum=10,maximum=60000"`
	StateFile      string `json:"stateFile" jsonschema:"title=State file,description=File recording the followed file's inode and the offset after the last alert delivered to Falco; on restart reading resumes there (at-least-once; see docs/reliability.md). Empty: no state; startAt applies,default="`
}

// Spill configures the webhook's on-disk spill (pkg/input/spill): bodies
// the queue has no room for are written to disk, and answered 200 once
// durable, instead of being held until webhook.maxHoldMs.
type Spill struct {
	Dir         string `json:"dir" jsonschema:"title=Spill directory,description=Directory of the spill (created if its parent exists; one plugin instance at a time). Empty: no spill; a full queue holds the request (webhook.maxHoldMs),default="`
	MaxBytes    int    `json:"maxBytes" jsonschema:"title=Spill size (bytes),description=Most bytes of alerts the spill holds; when full the webhook holds the request as without a spill. The file can reach about twice this,default=1073741824,minimum=1048576,maximum=1099511627776"`
	Sync        string `json:"sync" jsonschema:"title=Spill sync policy,description=always: fsync before answering 200 (survives kill -9 and power loss); none: no fsync (survives kill -9 of the process; a power loss may lose recent alerts),enum=always,enum=none,default=always"`
	WriteAhead  bool   `json:"writeAhead" jsonschema:"title=Write ahead,description=true: every body is written to the spill before its 200 so every accepted alert survives a kill -9 of triage; false: only bodies the queue has no room for within queueWaitMs (a kill -9 then loses what sat in the in-memory queue),default=true"`
	QueueWaitMs int    `json:"queueWaitMs" jsonschema:"title=Queue wait before spilling (ms),description=Without writeAhead: how long a body waits for room in the queue before it goes to the spill,default=50,minimum=0,maximum=600000"`
}

// Kafka configures the kafka:// input and `triage route` (docs/fleet.md):
// TLS and SASL towards the brokers, and the replay that rebuilds the state
// of the entities of newly assigned partitions.
type Kafka struct {
	TLS              bool   `json:"tls" jsonschema:"title=TLS,description=Connect to the brokers with TLS (system CAs unless tlsCAFile is set),default=false"`
	TLSCAFile        string `json:"tlsCAFile" jsonschema:"title=TLS CA file,description=PEM CA certificates the brokers' certificates must chain to (implies tls),default="`
	TLSCertFile      string `json:"tlsCertFile" jsonschema:"title=TLS client certificate file,description=PEM client certificate for mutual TLS; needs tlsKeyFile,default="`
	TLSKeyFile       string `json:"tlsKeyFile" jsonschema:"title=TLS client key file,description=PEM private key of tlsCertFile,default="`
	TLSServerName    string `json:"tlsServerName" jsonschema:"title=TLS server name,description=Name the brokers' certificates must carry when it is not the host of the address,default="`
	SASLMechanism    string `json:"saslMechanism" jsonschema:"title=SASL mechanism,description=Authenticate to the brokers: PLAIN or SCRAM-SHA-256 or SCRAM-SHA-512; empty: none,enum=,enum=PLAIN,enum=SCRAM-SHA-256,enum=SCRAM-SHA-512,default="`
	SASLUsername     string `json:"saslUsername" jsonschema:"title=SASL user,description=User name for saslMechanism,default="`
	SASLPasswordFile string `json:"saslPasswordFile" jsonschema:"title=SASL password file,description=File holding the SASL password (surrounding whitespace ignored),default="`
	ReplaySec        int    `json:"replaySec" jsonschema:"title=Replay span (s),description=How much alert time before a newly assigned partition's committed offset is replayed into the correlation state (no events); 0: the longer of correlation.windowSec and correlation.riskWindowSec plus correlation.windowSec,default=0,minimum=0,maximum=2592000"`
	RevokeWaitMs     int    `json:"revokeWaitMs" jsonschema:"title=Revoke wait (ms),description=On a rebalance how long the input waits for Falco to take the queued alerts of the partitions it gives up before committing them,default=10000,minimum=0,maximum=300000"`
	SessionTimeoutMs int    `json:"sessionTimeoutMs" jsonschema:"title=Group session timeout (ms),description=How long the group waits for a silent member (a crashed Falco) before moving its partitions,default=45000,minimum=1000,maximum=3600000"`
}

// Replay returns the replay span in seconds (ReplaySec, or its default
// for correlation c).
func (k *Kafka) Replay(c Correlation) int {
	if k.ReplaySec > 0 {
		return k.ReplaySec
	}
	return max(c.WindowSec, c.RiskWindowSec) + c.WindowSec
}

// LoadSASLPassword reads kafka.saslPasswordFile.
func (k *Kafka) LoadSASLPassword() (string, error) {
	b, err := readFile("kafka.saslPasswordFile", k.SASLPasswordFile)
	if err != nil {
		return "", err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", fmt.Errorf("init_config: key \"kafka.saslPasswordFile\": %s is empty", k.SASLPasswordFile)
	}
	return string(b), nil
}

// TLSConfig returns the client TLS configuration, or nil without TLS.
func (k *Kafka) TLSConfig() (*tls.Config, error) {
	if !k.TLS && k.TLSCAFile == "" && k.TLSCertFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: k.TLSServerName}
	if k.TLSCAFile != "" {
		b, err := readFile("kafka.tlsCAFile", k.TLSCAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("init_config: key \"kafka.tlsCAFile\": %s holds no PEM CA certificate", k.TLSCAFile)
		}
	}
	if k.TLSCertFile != "" || k.TLSKeyFile != "" {
		if k.TLSCertFile == "" || k.TLSKeyFile == "" {
			return nil, errors.New("init_config: keys \"kafka.tlsCertFile\" and \"kafka.tlsKeyFile\": give both or neither")
		}
		pair, err := (&Webhook{TLSCertFile: k.TLSCertFile, TLSKeyFile: k.TLSKeyFile}).LoadKeyPair()
		if err != nil {
			return nil, fmt.Errorf("%s (kafka.tlsCertFile/kafka.tlsKeyFile)", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

func (k *Kafka) validate() error {
	for _, r := range []intRange{
		{"kafka.replaySec", k.ReplaySec, 0, 2592000},
		{"kafka.revokeWaitMs", k.RevokeWaitMs, 0, 300000},
		{"kafka.sessionTimeoutMs", k.SessionTimeoutMs, 1000, 3600000},
	} {
		if r.val < r.min || r.val > r.max {
			return fmt.Errorf("init_config: key %q: %d is out of range [%d, %d]", r.key, r.val, r.min, r.max)
		}
	}
	if _, err := k.TLSConfig(); err != nil {
		return err
	}
	switch k.SASLMechanism {
	case "":
		if k.SASLUsername != "" || k.SASLPasswordFile != "" {
			return errors.New("init_config: key \"kafka.saslMechanism\": missing; kafka.saslUsername or kafka.saslPasswordFile is set")
		}
		return nil
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return fmt.Errorf("init_config: key \"kafka.saslMechanism\": %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", k.SASLMechanism)
	}
	if k.SASLUsername == "" {
		return errors.New("init_config: key \"kafka.saslUsername\": missing; kafka.saslMechanism needs a user")
	}
	if k.SASLPasswordFile == "" {
		return errors.New("init_config: key \"kafka.saslPasswordFile\": missing; kafka.saslMechanism needs a password file")
	}
	_, err := k.LoadSASLPassword()
	return err
}

// Reset sets every key to its default. Defaults live here and nowhere else.
func (c *Config) Reset() {
	*c = Config{
		QueueSize:        8192,
		QueueBytes:       64 << 20,
		MaxEventBytes:    256 * 1024,
		BatchSize:        128,
		IdleTimeoutMs:    30,
		StatsIntervalSec: 60,
		Webhook: Webhook{
			MaxBodyBytes:        16 * 1024 * 1024,
			AllowNonLoopback:    false,
			SecretHeader:        "X-Triage-Secret",
			ReadHeaderTimeoutMs: 10000,
			ReadTimeoutMs:       60000,
			IdleTimeoutMs:       120000,
			MaxConnections:      256,
			MaxHoldMs:           30000,
			MaxInflightBytes:    64 << 20,
		},
		Follow: Follow{
			StartAt:        "end",
			PollIntervalMs: 250,
		},
		Spill: Spill{
			MaxBytes:    1 << 30,
			Sync:        "always",
			WriteAhead:  true,
			QueueWaitMs: 50,
		},
		Risk: Risk{
			CriticalNamespaces:   []string{"kube-system"},
			DefaultCriticality:   "medium",
			CustomRuleConfidence: 70,
			BuiltinDrills:        []string{"event-generator", "atomic-red-team"},
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
		Kafka: Kafka{
			RevokeWaitMs:     10000,
			SessionTimeoutMs: 45000,
		},
	}
}

// Default returns the default configuration.
func Default() Config {
	var c Config
	c.Reset()
	return c
}

// Parse reads an init_config string as Falco passes it (falcoform.go):
// empty or null means all defaults; Falco's YAML conversions are undone
// where possible. Unknown keys, wrong types and out-of-range values are
// errors naming the key.
func Parse(s string) (Config, error) {
	c := Default()
	if strings.TrimSpace(s) == "" {
		return c, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return Config{}, describeDecodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("init_config: unexpected data after the JSON object")
	}
	if raw == nil {
		return c, nil // `init_config: {}` in falco.yaml
	}
	if _, ok := raw.(map[string]any); !ok {
		return Config{}, fmt.Errorf("init_config: must be a JSON object, got %s", describeJSON(raw))
	}
	var notes []string
	norm, err := normalize(raw, reflect.TypeOf(c), "", &notes)
	if err != nil {
		return Config{}, err
	}
	b, err := json.Marshal(norm)
	if err != nil {
		return Config{}, fmt.Errorf("init_config: %v", err)
	}
	strict := json.NewDecoder(bytes.NewReader(b))
	strict.DisallowUnknownFields()
	if err := strict.Decode(&c); err != nil {
		return Config{}, describeDecodeError(err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	c.Notes = notes
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
		{"queueBytes", c.QueueBytes, 1 << 20, 16 << 30},
		{"maxEventBytes", c.MaxEventBytes, 1024, 16 << 20},
		{"batchSize", c.BatchSize, 1, 4096},
		{"idleTimeoutMs", c.IdleTimeoutMs, 1, 1000},
		{"statsIntervalSec", c.StatsIntervalSec, 0, 86400},
		{"webhook.maxBodyBytes", c.Webhook.MaxBodyBytes, 1024, 1 << 30},
		{"webhook.readHeaderTimeoutMs", c.Webhook.ReadHeaderTimeoutMs, 100, 600000},
		{"webhook.readTimeoutMs", c.Webhook.ReadTimeoutMs, 100, 3600000},
		{"webhook.idleTimeoutMs", c.Webhook.IdleTimeoutMs, 100, 3600000},
		{"webhook.maxConnections", c.Webhook.MaxConnections, 1, 65536},
		{"webhook.maxHoldMs", c.Webhook.MaxHoldMs, 0, 600000},
		{"webhook.maxInflightBytes", c.Webhook.MaxInflightBytes, 1 << 20, 16 << 30},
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
	if c.MemoryLimitMiB < -1 || (c.MemoryLimitMiB > 0 && c.MemoryLimitMiB < 32) || c.MemoryLimitMiB > 1<<20 {
		return fmt.Errorf("init_config: key \"memoryLimitMiB\": %d is not -1 (no limit), 0 (automatic) or 32-%d", c.MemoryLimitMiB, 1<<20)
	}
	if c.Webhook.MaxBodyBytes < c.MaxEventBytes {
		return fmt.Errorf("init_config: key \"webhook.maxBodyBytes\": %d is smaller than maxEventBytes (%d), so the largest alert could never be posted", c.Webhook.MaxBodyBytes, c.MaxEventBytes)
	}
	if err := c.Webhook.validate(); err != nil {
		return err
	}
	switch c.Follow.StartAt {
	case "end", "beginning":
	default:
		return fmt.Errorf("init_config: key \"follow.startAt\": %q is not one of end, beginning", c.Follow.StartAt)
	}
	if err := c.Follow.validate(); err != nil {
		return err
	}
	if err := c.Spill.validate(c.MaxEventBytes); err != nil {
		return err
	}
	if err := c.Kafka.validate(); err != nil {
		return err
	}
	return c.Risk.validate()
}

func (w *Webhook) validate() error {
	if w.ReadHeaderTimeoutMs > w.ReadTimeoutMs {
		return fmt.Errorf("init_config: key \"webhook.readHeaderTimeoutMs\": %d is larger than webhook.readTimeoutMs (%d), which also bounds the headers", w.ReadHeaderTimeoutMs, w.ReadTimeoutMs)
	}
	switch {
	case w.TLSCertFile != "" && w.TLSKeyFile == "":
		return errors.New("init_config: key \"webhook.tlsKeyFile\": missing; webhook.tlsCertFile is set and needs its private key")
	case w.TLSKeyFile != "" && w.TLSCertFile == "":
		return errors.New("init_config: key \"webhook.tlsCertFile\": missing; webhook.tlsKeyFile is set but there is no certificate")
	case w.TLSClientCAFile != "" && w.TLSCertFile == "":
		return errors.New("init_config: key \"webhook.tlsClientCAFile\": mutual TLS needs TLS: set webhook.tlsCertFile and webhook.tlsKeyFile too")
	}
	for _, f := range []struct{ key, path string }{
		{"webhook.tlsCertFile", w.TLSCertFile},
		{"webhook.tlsKeyFile", w.TLSKeyFile},
		{"webhook.tlsClientCAFile", w.TLSClientCAFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := readFile(f.key, f.path); err != nil {
			return err
		}
	}
	if w.TLSCertFile != "" {
		if _, err := w.LoadKeyPair(); err != nil {
			return err
		}
	}
	if w.TLSClientCAFile != "" {
		if _, err := w.LoadClientCAs(); err != nil {
			return err
		}
	}
	if w.SecretFile != "" {
		if err := validHeaderName(w.SecretHeader); err != nil {
			return fmt.Errorf("init_config: key \"webhook.secretHeader\": %v", err)
		}
		if _, err := w.LoadSecret(); err != nil {
			return err
		}
	}
	return nil
}

// readFile reads a file named by a config key; errors name the key but
// never the content.
func readFile(key, name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("init_config: key %q: cannot read %s: %v", key, name, errors.Unwrap(err))
	}
	return b, nil
}

// LoadKeyPair reads and checks webhook.tlsCertFile and webhook.tlsKeyFile.
func (w *Webhook) LoadKeyPair() (tls.Certificate, error) {
	cert, err := readFile("webhook.tlsCertFile", w.TLSCertFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := readFile("webhook.tlsKeyFile", w.TLSKeyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if !bytes.Contains(cert, []byte("-----BEGIN CERTIFICATE-----")) {
		return tls.Certificate{}, fmt.Errorf("init_config: key \"webhook.tlsCertFile\": %s holds no PEM certificate", w.TLSCertFile)
	}
	if !bytes.Contains(key, []byte("PRIVATE KEY-----")) {
		return tls.Certificate{}, fmt.Errorf("init_config: key \"webhook.tlsKeyFile\": %s holds no PEM private key", w.TLSKeyFile)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		// The message of crypto/tls never includes key material.
		return tls.Certificate{}, fmt.Errorf("init_config: keys \"webhook.tlsCertFile\" and \"webhook.tlsKeyFile\": %v", err)
	}
	return pair, nil
}

// LoadClientCAs reads webhook.tlsClientCAFile into a pool.
func (w *Webhook) LoadClientCAs() (*x509.CertPool, error) {
	b, err := readFile("webhook.tlsClientCAFile", w.TLSClientCAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("init_config: key \"webhook.tlsClientCAFile\": %s holds no PEM CA certificate", w.TLSClientCAFile)
	}
	return pool, nil
}

// LoadSecret reads webhook.secretFile. Surrounding whitespace (a trailing
// newline from echo) is not part of the secret.
func (w *Webhook) LoadSecret() ([]byte, error) {
	b, err := readFile("webhook.secretFile", w.SecretFile)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("init_config: key \"webhook.secretFile\": %s is empty", w.SecretFile)
	}
	if len(b) > 4096 {
		return nil, fmt.Errorf("init_config: key \"webhook.secretFile\": the secret in %s is longer than 4096 bytes", w.SecretFile)
	}
	for _, c := range b {
		// A header value cannot carry control characters.
		if c < 0x20 || c == 0x7f {
			return nil, fmt.Errorf("init_config: key \"webhook.secretFile\": the secret in %s contains a control character, which cannot be sent in a header", w.SecretFile)
		}
	}
	return b, nil
}

// validHeaderName accepts an HTTP token (RFC 9110 section 5.6.2).
func validHeaderName(s string) error {
	if s == "" {
		return errors.New("empty header name")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return fmt.Errorf("%q is not a valid header name", s)
	}
	return nil
}

func (f *Follow) validate() error {
	if f.StateFile == "" {
		return nil
	}
	dir := filepath.Dir(f.StateFile)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("init_config: key \"follow.stateFile\": directory %s: %v", dir, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("init_config: key \"follow.stateFile\": %s is not a directory", dir)
	}
	if st, err := os.Stat(f.StateFile); err == nil && st.IsDir() {
		return fmt.Errorf("init_config: key \"follow.stateFile\": %s is a directory", f.StateFile)
	}
	return nil
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
	if err := r.validateDrills(); err != nil {
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
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		return "", err
	}
	relaxSchema(tree)
	if b, err = json.Marshal(tree); err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return "", err
	}
	return out.String(), nil
}

func (sp *Spill) validate(maxEventBytes int) error {
	switch sp.Sync {
	case "always", "none":
	default:
		return fmt.Errorf("init_config: key \"spill.sync\": %q is not one of always, none", sp.Sync)
	}
	if sp.MaxBytes < 1<<20 || sp.MaxBytes > 1<<40 {
		return fmt.Errorf("init_config: key \"spill.maxBytes\": %d is out of range [%d, %d]", sp.MaxBytes, 1<<20, 1<<40)
	}
	if sp.MaxBytes < maxEventBytes+64 {
		return fmt.Errorf("init_config: key \"spill.maxBytes\": %d is smaller than one alert of maxEventBytes (%d)", sp.MaxBytes, maxEventBytes)
	}
	if sp.QueueWaitMs < 0 || sp.QueueWaitMs > 600000 {
		return fmt.Errorf("init_config: key \"spill.queueWaitMs\": %d is out of range [0, 600000]", sp.QueueWaitMs)
	}
	if sp.Dir == "" {
		return nil
	}
	if !filepath.IsAbs(sp.Dir) {
		return fmt.Errorf("init_config: key \"spill.dir\": %q is not an absolute path", sp.Dir)
	}
	parent := filepath.Dir(filepath.Clean(sp.Dir))
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return fmt.Errorf("init_config: key \"spill.dir\": parent directory %s does not exist", parent)
	}
	if st, err := os.Stat(sp.Dir); err == nil && !st.IsDir() {
		return fmt.Errorf("init_config: key \"spill.dir\": %s is not a directory", sp.Dir)
	}
	return nil
}
