package risk

import "github.com/triage-dev/triage/pkg/kb"

// PrimaryTactic is the one tactic an alert counts for, in scoring and in
// correlation alike (docs/risk-model.md, "One tactic per alert"): the
// rule's own mitre_*/TA tag when the mapping agrees with it, else the
// earliest kill-chain tactic of the first (primary) technique, else the
// first tactic of the mapping; "" when the alert has none. A technique
// such as Valid Accounts spans four tactics; counting the strongest of
// them (or all of them) would make one alert weigh as several stages.
func PrimaryTactic(k *kb.KB, tags []string, res *kb.Resolution) string {
	for _, tag := range k.TagTactics(tags) {
		for _, t := range res.Tactics {
			if t == tag {
				return t
			}
		}
	}
	if len(res.Techniques) > 0 {
		if tech, ok := k.Technique(res.Techniques[0]); ok {
			best := ""
			for _, s := range tech.Tactics {
				if tac, ok := k.TacticByShortname(s); ok && (best == "" || k.Stage(tac.ID) < k.Stage(best)) {
					best = tac.ID
				}
			}
			if best != "" {
				return best
			}
		}
	}
	if len(res.Tactics) > 0 {
		return res.Tactics[0]
	}
	return ""
}
