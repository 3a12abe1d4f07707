// Command crid is a Kubernetes CRI runtime daemon.
//
//	crid [flags]            serve the CRI on --listen (the default command)
//	crid [flags] config     print the configuration in force as TOML
//	crid config --defaults  print the defaults (deploy/crid.toml)
//	crid version            print the version
//	crid images import [--name REF] FILE|-
//	                        load a docker-archive or OCI archive into the
//	                        running crid (for air-gapped nodes, kind load)
//
// Flags use CRI-O's names, so an operator's habits carry over.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/oci/executor"
	_ "github.com/crid-dev/crid/pkg/oci/nsenter" // joins a container's namespaces before Go starts (crid exec)
	"github.com/crid-dev/crid/pkg/version"
)

// The main goroutine stays on the main thread, as it is during init: crid
// exec sets per-thread state (capabilities, no_new_privs, the
// parent-death signal nsenter set) that only the thread that execs carries
// into the container's process.
func init() { runtime.LockOSThread() }

func main() {
	// The heap profile samples an allocation every 512 KiB into a table
	// of stacks that grows to about 1 MB of crid's resident memory (0.9
	// MB with one pod here). Only /debug/pprof reads it: serveMetrics
	// turns it back on when that is served.
	runtime.MemProfileRate = 0
	// Hidden subcommand: a process in a running container (crid exec),
	// entered by the nsenter constructor before main.
	if len(os.Args) > 1 && os.Args[1] == executor.ExecCommand {
		os.Exit(executor.ExecInit())
	}
	// Descriptors crid inherited past stdio (a shell's, a CI runner's
	// pipe) must not reach what outlives it: its monitors and infra
	// processes, and so their containers, would hold them, and a runner
	// waiting for its pipe's EOF would wait for the node's last pod. Go
	// opens its own close-on-exec; these are marked so in one call.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, "crid: mark inherited descriptors close-on-exec (Linux 5.11 or later):", err)
		os.Exit(1)
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "crid:", err)
		klog.Flush()
		os.Exit(1)
	}
}

// options are the command line: the flags that override the config file,
// and the command to run.
type options struct {
	configFile    string
	root          string
	runRoot       string
	listen        string
	registries    string
	cniConfigDir  string
	cniPluginDirs dirList
	logLevel      string
	defaults      bool

	fs *flag.FlagSet
	// sub is what follows the images command: its own command and flags.
	sub []string
}

// dirList is a flag that may be given more than once, each value itself a
// colon-separated list, as operators write PATH.
type dirList []string

func (d *dirList) String() string { return strings.Join(*d, ":") }
func (d *dirList) Set(v string) error {
	for _, p := range strings.Split(v, ":") {
		if p != "" {
			*d = append(*d, p)
		}
	}
	return nil
}

func newOptions(stderr io.Writer) *options {
	o := &options{fs: flag.NewFlagSet("crid", flag.ContinueOnError)}
	fs := o.fs
	fs.SetOutput(stderr)
	fs.StringVar(&o.configFile, "config", "", "configuration file (default "+config.DefaultFile+", if it exists)")
	fs.StringVar(&o.root, "root", "", "directory of persistent state (default /var/lib/crid)")
	fs.StringVar(&o.runRoot, "runroot", "", "directory of runtime state (default /run/crid)")
	fs.StringVar(&o.listen, "listen", "", "path of the CRI unix socket (default /run/crid/crid.sock)")
	fs.StringVar(&o.registries, "registries-conf", "", "registries.conf file (default /etc/containers/registries.conf)")
	fs.StringVar(&o.cniConfigDir, "cni-config-dir", "", "CNI network configuration directory (default /etc/cni/net.d)")
	fs.Var(&o.cniPluginDirs, "cni-plugin-dir", "CNI plugin directory; repeat it or separate with ':' (default /opt/cni/bin:/usr/lib/cni)")
	fs.StringVar(&o.logLevel, "log-level", "", "info, debug, trace, or a verbosity 0-10 (default info)")
	fs.BoolVar(&o.defaults, "defaults", false, "with config: print the defaults, ignoring the file and other flags")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: crid [flags] [serve|config|version|images import [--name REF] FILE|-]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return o
}

// parse reads flags before and after the command, so both `crid --root X
// config` and `crid config --root X` work.
func (o *options) parse(args []string) (string, error) {
	if err := o.fs.Parse(args); err != nil {
		return "", err
	}
	cmd := "serve"
	if rest := o.fs.Args(); len(rest) > 0 {
		cmd = rest[0]
		if cmd == "images" {
			o.sub = rest[1:]
			return cmd, nil
		}
		if err := o.fs.Parse(rest[1:]); err != nil {
			return "", err
		}
		if extra := o.fs.Args(); len(extra) > 0 {
			return "", fmt.Errorf("unexpected argument %q after %s", extra[0], cmd)
		}
	}
	switch cmd {
	case "serve", "config", "version":
	default:
		return "", fmt.Errorf("unknown command %q (want serve, config or version)", cmd)
	}
	if o.defaults && cmd != "config" {
		return "", errors.New("--defaults goes with the config command")
	}
	return cmd, nil
}

// load reads the config file and lays the flags that were given over it.
func (o *options) load() (config.Config, error) {
	file, mustExist := o.configFile, true
	if file == "" {
		file, mustExist = config.DefaultFile, false
	}
	cfg, err := config.Load(file, mustExist)
	if err != nil {
		return cfg, err
	}
	set := map[string]bool{}
	o.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	overrides := []struct {
		flag string
		dst  *string
		val  string
	}{
		{"root", &cfg.Root, o.root},
		{"runroot", &cfg.RunRoot, o.runRoot},
		{"listen", &cfg.Listen, o.listen},
		{"registries-conf", &cfg.Image.RegistriesConf, o.registries},
		{"cni-config-dir", &cfg.Network.CNIConfigDir, o.cniConfigDir},
		{"log-level", &cfg.LogLevel, o.logLevel},
	}
	for _, ov := range overrides {
		if set[ov.flag] {
			*ov.dst = ov.val
		}
	}
	if set["cni-plugin-dir"] {
		cfg.Network.CNIPluginDirs = o.cniPluginDirs
	}
	if len(set) > 0 {
		if err := cfg.Validate(); err != nil {
			return cfg, fmt.Errorf("configuration from %s and flags: %w", file, err)
		}
	}
	return cfg, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o := newOptions(stderr)
	cmd, err := o.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	switch cmd {
	case "version":
		_, err := fmt.Fprintln(stdout, version.String())
		return err
	case "images":
		cfg, err := o.load()
		if err != nil {
			return err
		}
		return images(cfg, o.sub, os.Stdin, stdout, stderr)
	case "config":
		cfg := config.Default()
		if !o.defaults {
			if cfg, err = o.load(); err != nil {
				return err
			}
		}
		return cfg.WriteTOML(stdout)
	}
	cfg, err := o.load()
	if err != nil {
		return err
	}
	return serve(cfg)
}
