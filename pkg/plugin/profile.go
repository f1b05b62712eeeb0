package plugin

import (
	"os"
	"runtime/pprof"
	"sync"

	"github.com/triage-dev/triage/pkg/logging"
)

// ProfileEnv names the environment variable that makes the plugin write a
// CPU profile of its own Go runtime to the file it names, from the first
// successful init to the destroy of the last live state. A host's profiler
// (or a Go test loading libtriage.so) cannot see inside the library's
// runtime; docs/performance.md ("Profiles") shows how to use it.
const ProfileEnv = "TRIAGE_CPUPROFILE"

var profile struct {
	sync.Mutex
	file *os.File
}

// startProfile runs when the first state becomes live (see live).
func startProfile(log *logging.Logger) {
	path := os.Getenv(ProfileEnv)
	if path == "" {
		return
	}
	profile.Lock()
	defer profile.Unlock()
	if profile.file != nil {
		return
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		log.Printf("%s: cannot profile to %s: %v", ProfileEnv, path, err)
		if f != nil {
			f.Close()
		}
		return
	}
	profile.file = f
	log.Printf("%s: writing a CPU profile to %s until the last plugin state is destroyed", ProfileEnv, path)
}

// stopProfile runs when the last live state is destroyed.
func stopProfile() {
	profile.Lock()
	defer profile.Unlock()
	if profile.file != nil {
		pprof.StopCPUProfile()
		profile.file.Close()
		profile.file = nil
	}
}
