// Command nmeter stands in for busybox's nmeter applet, which Debian's
// busybox (the userland of the test images) lacks and the node e2e suite
// uses for timestamps with milliseconds (container_lifecycle_pod_
// construction.go: `nmeter -d0 '%3t' | head -n1`). It knows the time
// fields only: %t is hh:mm:ss of local time, %Nt the same with N decimal
// digits of the second; %% is a percent sign. A field it does not know
// (the CPU, memory and I/O meters of the real applet) is an error, not a
// blank. It prints a line every -d milliseconds (0: at once, again and
// again) until its output is closed.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	delay, format, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "nmeter:", err)
		fmt.Fprintln(os.Stderr, "usage: nmeter [-d MSEC] FORMAT")
		os.Exit(1)
	}
	if _, err := render(format, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, "nmeter:", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	for {
		line, _ := render(format, time.Now())
		out.WriteString(line + "\n")
		if err := out.Flush(); err != nil {
			os.Exit(0) // the reader is gone, as with `| head -n1`
		}
		if delay > 0 {
			time.Sleep(time.Duration(delay) * time.Millisecond)
		}
	}
}

// parseArgs reads busybox's options: the delay is -d MSEC or -dMSEC
// (the suite writes -d0, which Go's flag package would take for a flag
// named d0).
func parseArgs(args []string) (delay int, format string, err error) {
	delay = 1000
	for len(args) > 0 && strings.HasPrefix(args[0], "-d") {
		v := strings.TrimPrefix(args[0], "-d")
		args = args[1:]
		if v == "" {
			if len(args) == 0 {
				return 0, "", fmt.Errorf("-d needs a value")
			}
			v, args = args[0], args[1:]
		}
		if delay, err = strconv.Atoi(v); err != nil {
			return 0, "", fmt.Errorf("-d %q: %w", v, err)
		}
	}
	if len(args) != 1 {
		return 0, "", fmt.Errorf("want one FORMAT, got %q", args)
	}
	return delay, args[0], nil
}

// render expands the format's fields for the time now.
func render(format string, now time.Time) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i < len(format) && format[i] == '%' {
			b.WriteByte('%')
			continue
		}
		digits := 0
		for i < len(format) && format[i] >= '0' && format[i] <= '9' {
			digits = digits*10 + int(format[i]-'0')
			i++
		}
		if i >= len(format) || format[i] != 't' || digits > 9 {
			return "", fmt.Errorf("field %q of %q: only %%t and %%Nt (N up to 9) are known", format[strings.LastIndexByte(format[:min(i, len(format))], '%'):min(i+1, len(format))], format)
		}
		b.WriteString(now.Format("15:04:05"))
		if digits > 0 {
			frac := fmt.Sprintf("%09d", now.Nanosecond())
			b.WriteString("." + frac[:digits])
		}
	}
	return b.String(), nil
}
