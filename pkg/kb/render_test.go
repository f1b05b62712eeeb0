package kb

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Attacker-controlled values must come out of a rendered command as the
// same single word, never executed: checked by running real bash.
func TestShellQuoteKeepsHostileValuesInert(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	hostile := []string{
		"$(reboot)", "`id`", "a'b", `a"b`, "a b", "x; rm -rf /tmp/nothing", "line1\nline2",
		"$HOME", "*", "-rf", "", "'", `\`, "!!", "{a,b}", "~root", "a\tb", "ünïcode",
		"x\rhidden", "\x1b[2J\x1b[31mred", "a'\nb\\c", "\x7f\xc2\x9b31m", "bad\xffutf8", "\x00",
	}
	for _, v := range hostile {
		cmd := RenderCommand("printf '%s' {{proc.cmdline}}", func(string) (string, bool) { return v, true })
		out, err := exec.Command("bash", "--noprofile", "--norc", "-c", cmd).Output()
		require.NoError(t, err, cmd)
		if v == "\x00" {
			// bash words cannot hold NUL; the alert parser already turns it into U+FFFD
			assert.Equal(t, "", string(out))
			continue
		}
		assert.Equal(t, v, string(out), "rendered as %s", cmd)
		for _, c := range cmd {
			assert.False(t, c < 0x20 && c != '\n' || c == 0x7f || c >= 0x80 && c < 0xa0, "control character %q in the rendered command %q", c, cmd)
		}
		assert.NotContains(t, cmd, "\n", "a newline in a value is shown as \\x0a")
	}
}

func TestRenderMissingValueIsQuotedMarker(t *testing.T) {
	got := RenderCommand("crictl inspect {{container.id}}", func(string) (string, bool) { return "", false })
	assert.Equal(t, "crictl inspect '<container.id>'", got)
	got = RenderCommand("kubectl -n {{k8s.ns.name}} get pod {{k8s.pod.name}}", func(k string) (string, bool) {
		return map[string]string{"k8s.ns.name": "shop", "k8s.pod.name": "api-1"}[k], true
	})
	assert.Equal(t, "kubectl -n shop get pod api-1", got)
}

func TestRenderYAMLQuotesAsYAMLString(t *testing.T) {
	got := RenderYAML("namespace: {{k8s.ns.name}}", func(string) (string, bool) { return "a: b\n- c", true })
	assert.Equal(t, `namespace: "a: b\n- c"`, got)
}

func TestCheckTemplate(t *testing.T) {
	ok := []string{
		"crictl inspect {{container.id}}",
		"ps -o pid,args --pid={{proc.pid}}",
		"kubectl -n {{k8s.ns.name}} describe pod {{k8s.pod.name}}",
		"echo 'literal' {{proc.name}} \"text\"",
		"# a comment with 'quote\nls {{fd.name}}",
		"grep -F -- {{fd.name}} /var/log/x # it's fine",
		"repo={{github.repo.name}}\ngh api -X PATCH \"repos/$repo\" --input - <<'EOF'\n{\"a\": 1}\nEOF\necho {{proc.name}}",
	}
	for _, c := range ok {
		assert.Empty(t, CheckTemplate(c), c)
	}
	bad := []string{
		"echo '{{proc.name}}'",
		`echo "{{proc.name}}"`,
		`echo "prefix {{proc.name}} suffix"`,
		"cat <<EOF\n{{proc.name}}\nEOF",
		"cat <<-'END'\n\tx {{proc.name}}\n\tEND",
		"echo {{proc.name}",
		"echo {{ proc.name }}",
	}
	for _, c := range bad {
		assert.NotEmpty(t, CheckTemplate(c), c)
	}
}

func TestValidateStepForbidsHarmfulCommands(t *testing.T) {
	for _, cmd := range []string{
		"setenforce 0",
		"sudo setenforce Permissive",
		"chmod -R 444 /dev/shm",
		"chown -R nobody /etc",
		"rm -rf /",
		"rm -rf /var",
		"systemctl stop falco",
		"sysctl -w kernel.memfd_create=0",
	} {
		errs := ValidateStep(&Step{Title: "t", Safety: SafetyContain, Command: cmd})
		assert.NotEmpty(t, errs, cmd)
		assert.Contains(t, strings.Join(errs, ";"), "forbidden", cmd)
	}
	for _, cmd := range []string{
		"sysctl -w vm.memfd_noexec=2",
		"mount -o remount,noexec,nosuid,nodev /dev/shm",
		"chmod 0700 /root/.ssh",
		"rm -f /tmp/.x/kworkerd",
	} {
		assert.Empty(t, ValidateStep(&Step{Title: "t", Safety: SafetyHarden, Command: cmd}), cmd)
	}
	assert.NotEmpty(t, ValidateStep(&Step{Title: "t", Safety: "fix", Command: "true"}))
	assert.NotEmpty(t, ValidateStep(&Step{Title: "t", Safety: SafetyDestructive, Command: "rm -f /tmp/x"}), "destructive needs a note")
	assert.NotEmpty(t, ValidateStep(&Step{Title: "", Safety: SafetyInvestigate, Command: "true"}))
	assert.NotEmpty(t, ValidateStep(&Step{Title: "t", Safety: SafetyInvestigate}))
}
