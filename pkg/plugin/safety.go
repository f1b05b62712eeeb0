package plugin

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/triage-dev/triage/pkg/logging"
)

// recoverInto turns a panic in an SDK entry point into an error (when err
// is not nil) and a log line with the stack, so Falco gets a failure code
// instead of an abort. Use as: defer recoverInto(&err, "extract", log).
func recoverInto(err *error, entry string, log *logging.Logger) {
	v := recover()
	if v == nil {
		return
	}
	if log == nil {
		log = logging.Default()
	}
	log.Limitedf("recovered from panic in %s: %v\n%s", entry, v, debug.Stack())
	if err != nil {
		*err = fmt.Errorf("internal error in %s (recovered from panic: %v); please report it", entry, v)
	}
}

// FaultEnv names the environment variable that makes entry points panic,
// for tests only: a comma-separated list of init, open, next_batch,
// alert, extract, event_to_string, close, destroy. Each fires once per
// plugin state (alert: while processing the first alert of a batch).
const FaultEnv = "TRIAGE_FAULT_INJECT"

type faults struct {
	mu    sync.Mutex
	armed map[string]bool
}

func faultsFromEnv() *faults {
	v := os.Getenv(FaultEnv)
	if v == "" {
		return nil
	}
	f := &faults{armed: map[string]bool{}}
	for _, name := range strings.Split(v, ",") {
		f.armed[strings.TrimSpace(name)] = true
	}
	return f
}

// maybePanic panics once if the entry point is armed.
func (f *faults) maybePanic(entry string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	fire := f.armed[entry]
	delete(f.armed, entry)
	f.mu.Unlock()
	if fire {
		panic("injected fault at " + entry)
	}
}
