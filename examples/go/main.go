// transform: reads a file from a granted directory, converts its text as
// $MODE says, writes the result, reports on stdout and stderr and exits with
// the code given as third argument. Same behaviour as the Rust, C, C++ and
// AssemblyScript examples.
package main

import (
	"fmt"
	"os"
	"strconv"
)

const usage = "usage: transform INPUT OUTPUT [EXIT_CODE]"

func fail(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "transform: "+format+"\n", a...)
	os.Exit(code)
}

func main() {
	args := os.Args
	if len(args) < 3 || len(args) > 4 {
		fail(2, "%s", usage)
	}
	input, output := args[1], args[2]
	exitCode := 0
	if len(args) == 4 {
		n, err := strconv.Atoi(args[3])
		if err != nil || n < 0 || n > 125 {
			fail(2, "exit code must be an integer from 0 to 125, got %q", args[3])
		}
		exitCode = n
	}
	mode, ok := os.LookupEnv("MODE")
	if !ok || mode == "" {
		mode = "upper"
	}
	if mode != "upper" && mode != "lower" {
		fail(2, "unknown MODE %q (expected upper or lower)", mode)
	}

	data, err := os.ReadFile(input)
	if err != nil {
		fail(1, "cannot read %s: %v", input, err)
	}

	lines, words, inWord := 0, 0, false
	out := make([]byte, len(data))
	for i, c := range data {
		switch c {
		case '\n':
			lines++
		}
		space := c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
		if !space && !inWord {
			words++
		}
		inWord = !space
		if mode == "upper" && c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		} else if mode == "lower" && c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}

	if err := os.WriteFile(output, out, 0o644); err != nil {
		fail(1, "cannot write %s: %v", output, err)
	}

	fmt.Println("transform (go)")
	fmt.Printf("mode: %s\n", mode)
	fmt.Printf("input: %s: %d bytes, %d lines, %d words\n", input, len(data), lines, words)
	fmt.Fprintf(os.Stderr, "wrote %d bytes to %s\n", len(out), output)
	os.Exit(exitCode)
}
