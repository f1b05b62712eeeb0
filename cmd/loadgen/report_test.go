package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseBenchOutput(t *testing.T) {
	out := `goos: linux
BenchmarkParse-2   	  250000	      4488 ns/op	    222813 alerts/s	    1194 B/op	       3 allocs/op
BenchmarkHostExtractAllFieldsOneCall-2     	[triage] 2026/11/25 14:16:35 closed once input; counters: received=242
   52981	     20892 ns/op	        51.00 fields/op	     20584 host-ns/op	      11 B/op	       0 allocs/op
BenchmarkHostExtractOneFieldAfterFirst-2
[triage] 2026/11/25 14:16:38 closed once input
 3683445	       308.7 ns/op	         1.000 fields/op	       297.9 host-ns/op	       0 B/op	       0 allocs/op
BenchmarkParse-2   	  250000	      4000 ns/op	    250000 alerts/s	    1194 B/op	       3 allocs/op
PASS
`
	got := parseBenchOutput(out)
	assert.Equal(t, []float64{4488, 4000}, got["BenchmarkParse"]["ns/op"])
	assert.Equal(t, []float64{3}, got["BenchmarkParse"]["allocs/op"][:1])
	assert.Equal(t, []float64{20584}, got["BenchmarkHostExtractAllFieldsOneCall"]["host-ns/op"])
	assert.Equal(t, []float64{297.9}, got["BenchmarkHostExtractOneFieldAfterFirst"]["host-ns/op"])
	assert.Len(t, got, 3)
}
