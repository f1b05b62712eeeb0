package loadgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/triage-dev/triage/test/harness"
)

// EntitiesOptions describes one memory run: Entities distinct containers,
// PerEntity alerts each, written to an NDJSON file and read through the
// plugin's file input (read once) with Falco's next_batch loop played by
// the harness.
type EntitiesOptions struct {
	Lib        string // path of libtriage.so
	InitConfig string // init_config ("" = correlation.maxEntities set to Entities)
	Mix        string // NDJSON alert templates; only syscall ones are used
	Entities   int
	PerEntity  int
	Dir        string // where the NDJSON file is written ("" = a temporary directory, removed after)
}

// EntitiesResult is what one memory run measured, in the process that
// loaded the plugin (/proc/self/status).
type EntitiesResult struct {
	Alerts      int     `json:"alerts"`
	Delivered   int     `json:"delivered"`
	InitRSSMiB  float64 `json:"init_rss_mib"`  // after init, before open
	PeakRSSMiB  float64 `json:"peak_rss_mib"`  // VmHWM at the end
	FinalRSSMiB float64 `json:"final_rss_mib"` // VmRSS at the end, entities still tracked
	HarnessHeap float64 `json:"harness_heap_mib"`
	Elapsed     float64 `json:"elapsed_s"`
}

// RunEntities writes the alerts, drives them through the plugin and reads
// the process's memory. The harness side keeps nothing: each event is
// freed as soon as it is counted, so what grows is the plugin's.
func RunEntities(o EntitiesOptions) (EntitiesResult, error) {
	var res EntitiesResult
	if o.Entities <= 0 || o.PerEntity <= 0 {
		return res, errors.New("entities and per-entity must be > 0")
	}
	if o.InitConfig == "" {
		o.InitConfig = fmt.Sprintf(`{"correlation":{"maxEntities":%d}}`, o.Entities)
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "triage-entities-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	path := filepath.Join(dir, "entities.json")
	n, err := writeEntityAlerts(path, o)
	if err != nil {
		return res, err
	}
	res.Alerts = n
	runtime.GC()

	p, err := harness.Load(o.Lib)
	if err != nil {
		return res, err
	}
	if err := p.Init(o.InitConfig); err != nil {
		return res, err
	}
	defer p.Destroy()
	res.InitRSSMiB = ProcStatusMiB("VmRSS:")
	start := time.Now()
	inst, err := p.Open(path)
	if err != nil {
		return res, err
	}
	defer inst.Close()
	for {
		evts, rc, err := inst.NextBatch()
		if err != nil {
			return res, err
		}
		res.Delivered += len(evts)
		for _, e := range evts {
			e.Free()
		}
		if rc == harness.EOF {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return res, errors.New("not drained within 10 minutes")
		}
	}
	res.Elapsed = time.Since(start).Seconds()
	res.PeakRSSMiB = ProcStatusMiB("VmHWM:")
	res.FinalRSSMiB = ProcStatusMiB("VmRSS:")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HarnessHeap = float64(ms.HeapAlloc) / (1 << 20)
	return res, nil
}

// writeEntityAlerts writes PerEntity alerts for each of Entities
// containers, cycling through the syscall templates of the mix, with
// alert times one millisecond apart.
func writeEntityAlerts(path string, o EntitiesOptions) (int, error) {
	tmpls, err := syscallTemplates(o.Mix)
	if err != nil {
		return 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	base := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	n := 0
	for e := 0; e < o.Entities; e++ {
		id := fmt.Sprintf("%012x", 0x100000000000+e)
		for k := 0; k < o.PerEntity; k++ {
			m := tmpls[n%len(tmpls)]
			of, _ := m["output_fields"].(map[string]any)
			if of == nil {
				of = map[string]any{}
				m["output_fields"] = of
			}
			of["container.id"] = id
			of["k8s.ns.name"], of["k8s.pod.name"] = nil, nil
			m["hostname"] = "node-1"
			m["time"] = base.Add(time.Duration(n) * time.Millisecond).Format(time.RFC3339Nano)
			b, err := json.Marshal(m)
			if err != nil {
				return 0, err
			}
			w.Write(b)
			w.WriteByte('\n')
			n++
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return n, f.Close()
}

func syscallTemplates(mix string) ([]map[string]any, error) {
	f, err := os.Open(mix)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil || m["source"] != "syscall" {
			continue
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no syscall alert templates", mix)
	}
	return out, sc.Err()
}

// ProcStatusMiB reads one kB line of /proc/self/status (VmRSS:, VmHWM:).
func ProcStatusMiB(key string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, key) {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, key)), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}
