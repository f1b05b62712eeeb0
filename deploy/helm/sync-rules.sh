#!/usr/bin/env bash
# Rewrites the customRules copy at the end of deploy/helm/values.yaml and
# deploy/helm/values-fleet.yaml from rules/triage_rules.yaml. Run from
# anywhere; test/deploy_test.go checks that both copies are current.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rules="$root/rules/triage_rules.yaml"
marker='  triage_rules.yaml: |'
for values in "$root/deploy/helm/values.yaml" "$root/deploy/helm/values-fleet.yaml"; do
	line="$(grep -nxF -- "$marker" "$values" | cut -d: -f1)"
	[ -n "$line" ] || { echo "sync-rules: '$marker' not found in $values" >&2; exit 1; }
	tmp="$(mktemp)"
	trap 'rm -f "$tmp"' EXIT
	head -n "$line" "$values" > "$tmp"
	# Block scalar: every line indented by four spaces, empty lines stay empty.
	sed -e 's/^\(.\)/    \1/' "$rules" >> "$tmp"
	cat "$tmp" > "$values"
	rm -f "$tmp"
done
