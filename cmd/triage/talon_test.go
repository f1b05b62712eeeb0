package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTalonRules(t *testing.T) {
	code, out, errOut := runCLI(t, "", "talon-rules")
	require.Equal(t, 0, code, errOut)
	want, err := os.ReadFile("../../deploy/talon/rules.yaml")
	require.NoError(t, err)
	assert.Equal(t, string(want), out, "deploy/talon/rules.yaml is the default output")
	assert.Contains(t, out, "Talon v0.3.0")
	assert.NotContains(t, out, "kubernetes:terminate")
	assert.Equal(t, strings.Count(out, "\n  dry_run: \"true\"\n"), strings.Count(out, "\n- rule:"))

	code, out, errOut = runCLI(t, "", "talon-rules", "--allow-disruptive", "TRG-SYS-REVERSE-SHELL", "--live",
		"--output-target", "aws:s3", "--output-param", "bucket=evidence", "--output-param", "prefix=talon/")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, 2, strings.Count(out, "actionner: kubernetes:terminate"), "escalation and critical tiers of one playbook")
	assert.NotContains(t, out, "\n  dry_run: \"true\"")
	assert.Contains(t, out, "target: aws:s3")
	assert.Contains(t, out, "Disruptive actions opted in for: TRG-SYS-REVERSE-SHELL.")

	dir := t.TempDir()
	f := filepath.Join(dir, "rules.yaml")
	code, _, errOut = runCLI(t, "", "talon-rules", "--out", f)
	require.Equal(t, 0, code, errOut)
	code, out, errOut = runCLI(t, "", "talon-rules", "--check", f)
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "84 rules, no problems")

	b, err := os.ReadFile(f)
	require.NoError(t, err)
	typo := filepath.Join(dir, "typo.yaml")
	require.NoError(t, os.WriteFile(typo, []byte(strings.Replace(strings.Replace(string(b), "  dry_run:", "  dryrun:", 1), "tail_lines:", "tail_line:", 1)), 0o600))
	code, _, errOut = runCLI(t, "", "talon-rules", "--check", typo)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `unknown key "dryrun"`)
	assert.Contains(t, errOut, `unknown parameter "tail_line"`)

	code, _, errOut = runCLI(t, "", "talon-rules", "--allow-disruptive", "TRG-NOPE-X")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "no such playbook")
	code, _, _ = runCLI(t, "", "talon-rules", "--output-target", "aws:s3")
	assert.Equal(t, 2, code, "an S3 target needs its bucket")
}
