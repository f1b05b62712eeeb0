// followchild follows a file with a state file and prints every line it
// is handed on stdout, one write per line, so that a parent can kill it at
// any moment and know exactly what was delivered. Used by
// TestFollowStateSurvivesKill9; built by the test, not by go build ./...
//
// Usage: followchild FILE STATEFILE
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/triage-dev/triage/pkg/input/file"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: followchild FILE STATEFILE")
		os.Exit(2)
	}
	opts := file.FollowOptions{
		MaxLine:      4096,
		StartAtEnd:   true,
		PollInterval: 20 * time.Millisecond,
		StateFile:    os.Args[2],
		Logf: func(format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			fmt.Fprintln(os.Stderr, msg)
			if strings.HasPrefix(msg, "input: following ") {
				os.Stdout.WriteString("#following\n")
			}
		},
	}
	emit := func(line []byte, _ file.LinePos) error {
		// Delivered means written to the pipe: os.Stdout is unbuffered.
		_, err := os.Stdout.Write(append(line, '\n'))
		return err
	}
	if err := file.Follow(context.Background(), os.Args[1], opts, emit, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
