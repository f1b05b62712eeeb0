package alert

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The allocation-free paths must agree with ParseTime and ParsePriority,
// which stay the reference (and word every error).
func TestFastTimeAgreesWithParseTime(t *testing.T) {
	for _, s := range []string{
		"2026-11-21T04:45:00.682554049Z", "2026-11-21T04:45:00Z", "2026-11-21T04:45:00.5Z",
		"2026-11-21T04:45:00.000000001Z", "2024-02-29T23:59:59.9Z", "2023-02-29T00:00:00Z",
		"2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-11-21T24:00:00Z",
		"2026-11-21T04:60:00Z", "2026-11-21T04:45:60Z", "2026-11-21T04:45:00.Z", "2026-11-21T04:45:00.1234567890Z",
		"1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2261-12-31T23:59:59.999999999Z", "2262-01-01T00:00:00Z",
		"2026-11-21T04:45:00+02:00", "2026-11-21t04:45:00z", "2026-11-21 04:45:00Z", "2026-1-21T04:45:00Z",
		"２026-11-21T04:45:00Z", "2026-11-21T04:45:00.68255404xZ",
	} {
		want, wantErr := ParseTime(s)
		got, gotErr := parseTimeBytes([]byte(s))
		assert.Equal(t, want, got, s)
		assert.Equal(t, wantErr, gotErr, s)
	}
}

func TestFastPriorityAgreesWithParsePriority(t *testing.T) {
	for _, s := range []string{
		"Warning", "warning", "WARNING", " Critical ", "info", "INFO", "Informational", "emerg", "Emergency",
		"err", "Error", "crit", "warn", "notice", "debug", "alert", "Alert", "bogus", "", "Warnin",
		"Wárning", "\u212Aritical", "critical\u00a0",
	} {
		want, wantErr := ParsePriority(s)
		got, gotErr := parsePriorityBytes([]byte(s))
		assert.Equal(t, want, got, s)
		assert.Equal(t, wantErr, gotErr, s)
	}
}
