package correlate

import "github.com/triage-dev/triage/pkg/alert"

// AppendEntity appends a's entity ID (as ResolveEntity names it) to dst,
// so a caller that only looks the ID up (risk.Attempts) needs no string
// per alert.
func AppendEntity(dst []byte, a *alert.Alert) []byte {
	b, _ := appendEntity(dst, a)
	return b
}
