// Command fakenginx stands in for nginx in the test images. critest looks
// at nginx from outside: an HTTP 200 on the ports of /etc/nginx/conf.d,
// /var/run/nginx.pid, a process whose comm is "nginx", and "master process"
// in /proc/1/cmdline. Real nginx rewrites its argv in place for the last;
// a Go program cannot, so it re-executes itself, keeping its PID, with the
// argv[0] nginx would show.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

const masterArgv0 = "nginx: master process nginx -g daemon off;"

func main() {
	if os.Args[0] != masterArgv0 {
		self, err := os.Executable()
		if err != nil {
			fatal(err)
		}
		// Exec the installed path, not /proc/self/exe: comm is taken from
		// the file name, and pidof looks for "nginx".
		fatal(syscall.Exec(self, append([]string{masterArgv0}, os.Args[1:]...), os.Environ()))
	}
	if err := os.WriteFile("/var/run/nginx.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer stop()

	handler := http.FileServer(http.Dir("/usr/share/nginx/html"))
	errc := make(chan error, 1)
	for _, port := range listenPorts() {
		l, err := net.Listen("tcp", ":"+port)
		if err != nil {
			fatal(err)
		}
		fmt.Printf("fakenginx: listening on :%s\n", port)
		go func() { errc <- http.Serve(l, handler) }()
	}
	select {
	case <-ctx.Done():
		os.Remove("/var/run/nginx.pid")
	case err := <-errc:
		fatal(err)
	}
}

var listenRe = regexp.MustCompile(`(?m)^\s*listen\s+(?:[^\s;]*:)?(\d+)[^;]*;`)

// listenPorts reads the ports of every "listen N;" in /etc/nginx/conf.d.
func listenPorts() []string {
	files, _ := filepath.Glob("/etc/nginx/conf.d/*.conf")
	seen := map[string]bool{}
	var ports []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range listenRe.FindAllStringSubmatch(string(data), -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				ports = append(ports, m[1])
			}
		}
	}
	if len(ports) == 0 {
		ports = []string{"80"}
	}
	return ports
}

func fatal(err error) {
	if errors.Is(err, http.ErrServerClosed) {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "fakenginx:", strings.TrimSpace(err.Error()))
	os.Exit(1)
}
