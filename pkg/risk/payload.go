package risk

import (
	"path"
	"strings"

	"github.com/triage-dev/triage/pkg/alert"
)

// Payload is what the alert's process runs: for an interpreter (a shell,
// busybox or toybox running a shell applet, python, perl, ruby, php, node,
// lua, awk, pwsh) the script it was given, the first path argument of
// proc.cmdline, made absolute with proc.cwd; for any other process its
// executable (proc.exepath, else proc.exe). "" when the alert shows
// neither, and for inline code (sh -c 'a command', python -c, perl -e …),
// which has no file.
//
// proc.cmdline is libsinsp's proc.name (the kernel's comm) followed by the
// arguments joined by spaces; quoting is lost, so an argument with spaces
// reads as several. That is enough to find a path: the script of
// `sh -c '/dev/shm/x.sh arg'` is still the word after -c.
func Payload(a *alert.Alert) string {
	var v fieldView
	v.fill(a)
	p, _ := payloadOf(&v)
	return p
}

// payloadOf returns the payload and whether it is a script run by an
// interpreter (true) rather than the executable itself.
func payloadOf(v *fieldView) (string, bool) {
	exe := v.first(kExePath, kExe)
	name, _ := v.value(kProcName)
	base := path.Base(exe)
	if exe == "" {
		base = name
	}
	family := interpreterFamily(base)
	if family == "" && exe != "" {
		return nativePayload(exe), false // most alerts: no need to read the command line
	}
	cmdline, _ := v.value(kCmdline)
	var buf [maxWords]string
	words := splitWords(cmdline, &buf)
	if name == "" && len(words) > 0 {
		name = words[0]
	}
	if exe == "" {
		family = interpreterFamily(name)
	}
	i := 1 // words[0] is proc.name
	if family == "multicall" {
		// busybox and toybox: the applet is the name they were run as
		// (argv[0], proc.exe: /bin/sh -> /bin/busybox; or the comm), or
		// their first argument (busybox sh x.sh). A script run through a
		// #!/bin/sh line has the script's name as comm and its path as
		// first argument: busybox takes no path as first argument, so a
		// path there is a script for the shell applet.
		argv0, _ := v.value(kExe)
		family = interpreterFamily(path.Base(argv0))
		if family == "" || family == "multicall" {
			family = interpreterFamily(name)
		}
		if (family == "" || family == "multicall") && len(words) > 1 {
			switch f := interpreterFamily(words[1]); {
			case f != "" && f != "multicall":
				family, i = f, 2
			case strings.HasPrefix(words[1], "/") || strings.HasPrefix(words[1], "./"):
				family = "shell"
			}
		}
		if family == "" || family == "multicall" {
			return nativePayload(exe), false
		}
	}
	if family == "" || len(words) <= i {
		return nativePayload(exe), false
	}
	cwd, _ := v.value(kCwd)
	if p := scriptArg(family, words[i:]); p != "" {
		return absolute(p, cwd), true
	}
	return "", true
}

// maxWords is how many words of a command line are looked at: the script
// is the first operand, so a few options in.
const maxWords = 32

// splitWords splits s at spaces into buf without allocating.
func splitWords(s string, buf *[maxWords]string) []string {
	n := 0
	for n < maxWords {
		for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
			s = s[1:]
		}
		if s == "" {
			break
		}
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			i = len(s)
		}
		buf[n] = s[:i]
		n++
		s = s[i:]
	}
	return buf[:n]
}

func nativePayload(exe string) string {
	if strings.HasPrefix(exe, "/") || strings.HasPrefix(exe, "memfd:") {
		return exe
	}
	return ""
}

func absolute(p, cwd string) string {
	if strings.HasPrefix(p, "/") || cwd == "" || !strings.HasPrefix(cwd, "/") {
		return p
	}
	return path.Join(cwd, p)
}

// interpreterFamily maps an executable name to how it takes a script:
// version suffixes are ignored (python3.12, php8.2, lua5.4, perl5.36).
func interpreterFamily(name string) string {
	n := strings.TrimRight(name, "0123456789.")
	switch n {
	case "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "hush":
		return "shell"
	case "busybox", "toybox":
		return "multicall"
	case "python", "pypy":
		return "python"
	case "perl", "ruby", "lua", "luajit", "tclsh", "wish":
		return "perl"
	case "node", "nodejs", "bun", "deno":
		return "node"
	case "php", "php-cli":
		return "php"
	case "awk", "gawk", "mawk", "nawk":
		return "awk"
	case "pwsh", "powershell":
		return "pwsh"
	}
	return ""
}

// scriptArg finds the script among an interpreter's arguments: after the
// options, the first operand; for a shell's -c, the first word of the
// command when it is a path. Options that take a value skip it.
func scriptArg(family string, args []string) string {
	for j := 0; j < len(args); j++ {
		w := args[j]
		if w == "--" {
			if j+1 < len(args) {
				return args[j+1]
			}
			return ""
		}
		if !strings.HasPrefix(w, "-") && !(family == "shell" && strings.HasPrefix(w, "+")) {
			if family == "awk" {
				return "" // the program text, not a file
			}
			return w
		}
		switch family {
		case "shell":
			if w == "-o" || w == "+o" || w == "-O" || w == "+O" {
				j++
				continue
			}
			if strings.HasPrefix(w, "-") && !strings.HasPrefix(w, "--") && strings.ContainsRune(w, 'c') {
				// -c (also -ec, -xc): the next word starts the command.
				if j+1 < len(args) && strings.Contains(args[j+1], "/") {
					return args[j+1]
				}
				return ""
			}
		case "python":
			switch w {
			case "-c", "-m":
				return ""
			case "-W", "-X", "-Q":
				j++
			}
		case "perl":
			switch w {
			case "-e", "-E":
				return ""
			case "-I", "-r", "-l":
				j++
			}
		case "node":
			switch w {
			case "-e", "--eval", "-p", "--print":
				return ""
			case "-r", "--require", "--import":
				j++
			}
		case "php":
			switch w {
			case "-r":
				return ""
			case "-f":
				if j+1 < len(args) {
					return args[j+1]
				}
				return ""
			case "-d", "-c", "-z":
				j++
			}
		case "awk":
			if w == "-f" {
				if j+1 < len(args) {
					return args[j+1]
				}
				return ""
			}
			if w == "-v" || w == "-F" {
				j++
			}
		case "pwsh":
			switch strings.ToLower(w) {
			case "-file", "-f":
				if j+1 < len(args) {
					return args[j+1]
				}
				return ""
			case "-command", "-c", "-encodedcommand", "-e", "-ec":
				return ""
			}
		}
	}
	return ""
}
