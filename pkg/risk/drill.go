package risk

import (
	"strconv"
	"strings"

	"github.com/triage-dev/triage/pkg/config"
)

// DrillCap is the most a drill scores: the top of the low band minus one,
// so a recognised test never reaches a medium, high or critical tier.
const DrillCap = 20

// Drill evidence kinds, as risk.factors and risk.drill show them.
const (
	EvidenceImage    = "image"    // the alert's container runs the tool's image
	EvidenceAncestry = "ancestry" // an ancestor process has the tool's name, confirmed by its path or a command line
)

// builtinDrills are the detection-testing tools triage knows. Each entry's
// evidence is in docs/risk-model.md ("Drills"), with the upstream source.
var builtinDrills = map[string]config.DrillActor{
	// falcosecurity/event-generator: the binary is /bin/event-generator in
	// its images (Dockerfile: COPY … /bin/event-generator, ENTRYPOINT);
	// it is run as `event-generator run [regexp]`, `test` or `suite`; the
	// memfd and spawn-as actions re-execute it as `<name> run helper.X`
	// or with a `^helper.X$` argument (events/syscall/
	// fileless_execution_via_memfd_create.go, pkg/runner/helper.go).
	"event-generator": {
		Name:      "event-generator",
		Processes: []string{"event-generator"},
		Exepaths:  []string{"*/event-generator"},
		Cmdlines:  []string{"event-generator run*", "event-generator test*", "event-generator suite*", "* run helper.*", "* run ^helper.*"},
		// Exact names: a wildcard registry prefix would let anyone's
		// registry (evil.example/falcosecurity/event-generator) pass.
		Images: []string{"falcosecurity/event-generator", "docker.io/falcosecurity/event-generator", "index.docker.io/falcosecurity/event-generator"},
	},
	// Atomic Red Team through Invoke-AtomicRedTeam: on Linux each sh or
	// bash test command is started by pwsh as `sh -c "…"` / `bash -c "…"`
	// (redcanaryco/invoke-atomicredteam, Private/Invoke-ExecuteCommand.ps1).
	// pwsh alone is not a test, so its command line must name
	// Invoke-AtomicTest (pwsh -c 'Invoke-AtomicTest T1059 …', as CI runs it).
	"atomic-red-team": {
		Name:      "atomic-red-team",
		Processes: []string{"pwsh"},
		Cmdlines:  []string{"*Invoke-AtomicTest*"},
	},
}

// drillConfirm is how to confirm a built-in tool's run beyond asking who
// ran it.
var drillConfirm = map[string]string{
	"event-generator": "its log names every action it ran (e.g. syscall.ExecutionFromDevShm), and its files are named falco-event-generator-*",
	"atomic-red-team": "Invoke-AtomicTest logs each test it runs (Invoke-AtomicTest -ShowDetails prints what the test does)",
}

type drillActor struct {
	config.DrillActor
}

// drillActors compiles the enabled built-ins and the configured actors.
func drillActors(cfg config.Risk) []drillActor {
	var out []drillActor
	for _, name := range cfg.BuiltinDrills {
		if d, ok := builtinDrills[name]; ok {
			out = append(out, drillActor{d})
		}
	}
	for _, d := range cfg.Drills {
		out = append(out, drillActor{d})
	}
	return out
}

// BuiltinDrillNames lists the tools triage recognises without
// configuration (config.BuiltinDrills names the same set; a test checks).
func BuiltinDrillNames() []string {
	out := make([]string, 0, len(builtinDrills))
	for n := range builtinDrills {
		out = append(out, n)
	}
	return out
}

// drillOf returns the first actor the alert's fields show, with the kind of
// evidence. One attacker-settable field is never enough where a stronger
// one exists: an ancestor's name (comm, which any process can set) must be
// confirmed by that ancestor's executable path, installed where only root
// writes (not /tmp, /dev/shm, a home directory or a memfd); a command line
// (which any process sets for itself) confirms only an actor that has no
// executable path of its own (Atomic Red Team runs as pwsh). The container
// image alone suffices, since it is set by whoever started the container,
// not by a process inside it.
func drillOf(v *fieldView, actors []drillActor) (string, string) {
	if len(actors) == 0 {
		return "", ""
	}
	image, _ := v.value(kImageRepo)
	for i := range actors {
		d := &actors[i]
		if image != "" && matchAnyWild(d.Images, image) {
			return d.Name, EvidenceImage
		}
		if len(d.Processes) == 0 || !d.nameHit(v) {
			continue
		}
		if d.exeHit(v) || len(d.Exepaths) == 0 && d.cmdHit(v) {
			return d.Name, EvidenceAncestry
		}
	}
	return "", ""
}

func (d *drillActor) nameHit(v *fieldView) bool {
	if p, ok := v.value(kPName); ok && matchAnyWild(d.Processes, p) {
		return true
	}
	for _, n := range v.ancNames[:v.nNames] {
		if matchAnyWild(d.Processes, n) {
			return true
		}
	}
	return false
}

func (d *drillActor) exeHit(v *fieldView) bool {
	if len(d.Exepaths) == 0 {
		return false
	}
	if p := v.first(kPExePath, kPExe); p != "" && installed(p) && matchAnyWild(d.Exepaths, p) {
		return true
	}
	for _, e := range v.ancExes[:v.nExes] {
		if installed(e) && matchAnyWild(d.Exepaths, e) {
			return true
		}
	}
	return false
}

// installed says whether an executable path is where packages and images
// install programs, which only root writes; a copy in a temporary, shared
// memory or home directory, a memfd or a deleted file proves nothing.
func installed(p string) bool {
	if strings.HasSuffix(p, " (deleted)") || strings.Contains(p, "/tmp/") || strings.Contains(p, "/..") {
		return false
	}
	for _, dir := range []string{"/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/", "/opt/"} {
		if strings.HasPrefix(p, dir) {
			return true
		}
	}
	return false
}

func (d *drillActor) cmdHit(v *fieldView) bool {
	if len(d.Cmdlines) == 0 {
		return false
	}
	for _, k := range [...]int{kPCmdline, kCmdline} {
		if c, ok := v.value(k); ok && matchAnyWild(d.Cmdlines, c) {
			return true
		}
	}
	return false
}

func matchAnyWild(patterns []string, s string) bool {
	for _, p := range patterns {
		if config.WildMatch(p, s) {
			return true
		}
	}
	return false
}

// DrillOf reads the drill a record's factors name: the tool and the kind
// of evidence ("", "" when the alert was not recognised as a test).
func DrillOf(factors []string) (name, evidence string) {
	for _, f := range factors {
		if !strings.HasPrefix(f, "drill=") {
			continue
		}
		n, _ := ParseFactor(f)
		n = strings.TrimPrefix(n, "drill=")
		name, evidence, _ = strings.Cut(n, "/")
		return name, evidence
	}
	return "", ""
}

// DrillGuide says how to confirm that a recognised drill was a test.
func DrillGuide(name, evidence, host, when string) string {
	var b strings.Builder
	b.WriteString("Looks like a detection test by ")
	b.WriteString(name)
	if evidence == EvidenceImage {
		b.WriteString(" (the container runs its image)")
	} else {
		b.WriteString(" (an ancestor process has its name, confirmed by its path or command line)")
	}
	b.WriteString(", so the score is capped at ")
	b.WriteString(strconv.Itoa(DrillCap))
	b.WriteString(". Confirm with whoever runs detection tests that ")
	b.WriteString(name)
	b.WriteString(" ran on ")
	if host == "" {
		host = "this host"
	}
	b.WriteString(host)
	if when != "" {
		b.WriteString(" at ")
		b.WriteString(when)
	}
	b.WriteString("; ")
	if c, ok := drillConfirm[name]; ok {
		b.WriteString(c)
		b.WriteString(". ")
	}
	b.WriteString("Process names and command lines can be set by any process: if nobody ran the test, handle this alert as real.")
	return b.String()
}
