//go:build race

package harness

// Under -race, atomics are calls into the race runtime, so the spin loop in
// TestTwoRuntimesHostPreemption has preemption points and cannot hang.
const raceEnabled = true
