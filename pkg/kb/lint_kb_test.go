package kb

import (
	"strings"
	"testing"
)

// The whole embedded knowledge base meets the safety taxonomy and the
// value-handling lints (lint.go).
func TestKnowledgeBaseLints(t *testing.T) {
	k := embeddedKB(t)
	if p := k.LintProblems(); len(p) > 0 {
		t.Errorf("%d lint problems:\n%s", len(p), strings.Join(p, "\n"))
	}
}
