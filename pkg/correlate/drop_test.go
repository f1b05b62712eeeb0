package correlate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Dropping entities forgets exactly them: the others keep their stories
// (same results as a tracker that never saw the dropped ones), the dropped
// ones start over, and the table, LRU ring and witnesses stay consistent.
func TestDropForgetsOnlyMatchingEntities(t *testing.T) {
	feed := func(tr *Tracker, containers []string, round int) []Result {
		var out []Result
		for _, c := range containers {
			var i int
			fmt.Sscanf(c, "c%d", &i)
			for j, st := range story {
				at := storyStartTime + int64(round*len(story)+j)*minute + int64(i)
				out = append(out, tr.Observe(Input{Alert: containerAlert(c, st.rule, at), Score: st.score, Tactics: st.tactics}))
			}
		}
		return out
	}
	var all, kept []string
	for i := 0; i < 300; i++ {
		c := fmt.Sprintf("c%03d", i)
		all = append(all, c)
		if i%3 != 0 {
			kept = append(kept, c)
		}
	}
	tr := newTracker(nil)
	feed(tr, all, 0)
	dropped := tr.Drop(func(id string) bool {
		var n int
		_, err := fmt.Sscanf(id[strings.LastIndexByte(id, '/')+1:], "c%d", &n)
		require.NoError(t, err)
		return n%3 == 0
	})
	assert.Equal(t, 100, dropped)
	assert.EqualValues(t, 200, tr.Tracked())
	assert.EqualValues(t, 0, tr.Evicted(), "a drop is not an eviction")

	ref := newTracker(nil)
	feed(ref, kept, 0)
	assert.Equal(t, feed(ref, kept, 1), feed(tr, kept, 1), "kept entities continue as if nothing was dropped")

	fresh := newTracker(nil)
	assert.Equal(t, feed(fresh, []string{"c000"}, 1)[0].Alerts, feed(tr, []string{"c000"}, 1)[0].Alerts, "a dropped entity starts over")
	assert.EqualValues(t, 201, tr.Tracked())

	// Everything can go, and the tracker still works.
	assert.Equal(t, 201, tr.Drop(func(string) bool { return true }))
	assert.EqualValues(t, 0, tr.Tracked())
	assert.EqualValues(t, 1, feed(tr, []string{"c001"}, 2)[0].Alerts)
}
