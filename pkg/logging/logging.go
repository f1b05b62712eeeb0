// Package logging is triage's plugin log: lines on stderr prefixed with
// "[triage]", as Falco shows plugin output, with a rate limit for messages
// driven by input (a flood of bad alerts must not flood Falco's log).
package logging

import (
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"time"
)

// Logger writes plugin log lines. The zero value is not usable; use New.
type Logger struct {
	out *log.Logger

	mu         sync.Mutex
	window     time.Time
	inWindow   int
	suppressed int
	limit      int
	period     time.Duration
}

// New returns a logger writing to w (os.Stderr when nil) that lets at most
// limit rate-limited lines through per period.
func New(w io.Writer, limit int, period time.Duration) *Logger {
	if w == nil {
		w = os.Stderr
	}
	return &Logger{out: log.New(w, "[triage] ", log.LstdFlags), limit: limit, period: period}
}

// Default is a stderr logger allowing 20 rate-limited lines per 10 seconds.
func Default() *Logger { return New(os.Stderr, 20, 10*time.Second) }

// Printf always logs.
func (l *Logger) Printf(format string, args ...any) {
	l.out.Output(2, fmt.Sprintf(format, args...)) //nolint:errcheck // nowhere to report a failed log write
}

// Limitedf logs unless too many limited lines were logged in this period;
// the number suppressed is reported when the next period starts.
func (l *Logger) Limitedf(format string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.window) >= l.period {
		if l.suppressed > 0 {
			l.out.Printf("%d similar messages suppressed in the last %s", l.suppressed, l.period)
		}
		l.window, l.inWindow, l.suppressed = now, 0, 0
	}
	if l.inWindow >= l.limit {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.inWindow++
	l.mu.Unlock()
	l.out.Output(2, fmt.Sprintf(format, args...)) //nolint:errcheck
}
