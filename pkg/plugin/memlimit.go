package plugin

import (
	"os"
	"runtime/debug"
	"sync"

	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/logging"
)

// Memory limit of the plugin's Go runtime. By default the runtime lets the
// heap grow to twice the live data before collecting, which with a million
// tracked entities (~126 B each, docs/correlation.md "Memory") doubles the
// RSS. A soft limit makes the collector run earlier instead; the entity
// slab holds no pointers, so those extra cycles are cheap.
const (
	memLimitFloor     = 128 << 20 // automatic limit never below this
	memLimitBase      = 40 << 20  // knowledge base, buffers, a working queue
	memLimitPerEntity = 128       // bytes per correlation.maxEntities
)

var memLimit struct {
	mu  sync.Mutex
	set int64 // limit this package set (the largest any live state asked for)
}

// autoMemoryLimit is the limit memoryLimitMiB 0 stands for.
func autoMemoryLimit(c config.Config) int64 {
	return max(memLimitFloor, memLimitBase+int64(c.Correlation.MaxEntities)*memLimitPerEntity)
}

// applyMemoryLimit sets the runtime's soft memory limit from c: an
// explicit memoryLimitMiB wins; 0 derives it from maxEntities unless the
// GOMEMLIMIT environment variable already set one; -1 leaves the runtime
// alone. With several plugin states the largest limit asked for applies
// (one runtime serves them all).
func applyMemoryLimit(c config.Config, log *logging.Logger) {
	var want int64
	switch {
	case c.MemoryLimitMiB < 0:
		return
	case c.MemoryLimitMiB > 0:
		want = int64(c.MemoryLimitMiB) << 20
	case os.Getenv("GOMEMLIMIT") != "":
		return
	default:
		want = autoMemoryLimit(c)
	}
	memLimit.mu.Lock()
	defer memLimit.mu.Unlock()
	if want <= memLimit.set {
		return
	}
	memLimit.set = want
	debug.SetMemoryLimit(want)
	log.Printf("memory limit of the plugin's Go runtime: %d MiB (memoryLimitMiB)", want>>20)
}
