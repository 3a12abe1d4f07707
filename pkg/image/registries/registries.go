// Package registries reads containers-registries.conf(5), version 2, the
// file CRI-O and Podman users already write, and turns an image name into
// the places to pull it from: mirrors first, then the (possibly remapped)
// location. A prefix remapped to another location never falls back to its
// original host: that is the point of remapping it.
//
// Short names are not searched: the kubelet's contract is that `busybox`
// means docker.io/library/busybox, and searching several registries for a
// short name lets whichever answers first choose the image.
// unqualified-search-registries is read, and reported as ignored.
package registries

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image/reference"
)

// Config is a parsed registries.conf.
type Config struct {
	UnqualifiedSearch []string   `toml:"unqualified-search-registries"`
	ShortNameMode     string     `toml:"short-name-mode"`
	Registries        []Registry `toml:"registry"`

	// Warnings lists what was read but is not in force.
	Warnings []string `toml:"-"`
}

// Registry is one [[registry]] table.
type Registry struct {
	Prefix             string   `toml:"prefix"`
	Location           string   `toml:"location"`
	Insecure           bool     `toml:"insecure"`
	Blocked            bool     `toml:"blocked"`
	MirrorByDigestOnly bool     `toml:"mirror-by-digest-only"`
	PullFromMirror     string   `toml:"pull-from-mirror"`
	Mirrors            []Mirror `toml:"mirror"`
}

// Mirror is one [[registry.mirror]] table.
type Mirror struct {
	Location       string `toml:"location"`
	Insecure       bool   `toml:"insecure"`
	PullFromMirror string `toml:"pull-from-mirror"`
}

// Endpoint is one place to try, in order.
type Endpoint struct {
	Ref      reference.Named // the name to ask that registry for
	Insecure bool            // plain http, or TLS without verification, allowed
	Mirror   bool
}

// Load reads path; a missing file is an empty configuration: no remaps.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read registries config %s: %w", path, err)
	}
	c, err := Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("registries config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads the text of a registries.conf.
func Parse(text string) (*Config, error) {
	var c Config
	md, err := toml.Decode(text, &c)
	if err != nil {
		return nil, err
	}
	for _, k := range md.Undecoded() {
		key := k.String()
		switch {
		case key == "registries" || strings.HasPrefix(key, "registries."):
			return nil, errors.New("this is the version 1 format ([registries.search] and the like); crid reads version 2 ([[registry]] tables), see containers-registries.conf(5)")
		case key == "aliases" || strings.HasPrefix(key, "aliases."), key == "credential-helpers", key == "additional-layer-store-auth-helper":
			// Podman's short-name aliases and credential helpers: not for
			// a node runtime, and harmless to pass over.
		default:
			c.Warnings = append(c.Warnings, fmt.Sprintf("unknown key %s ignored", key))
		}
	}
	if len(c.UnqualifiedSearch) > 0 {
		c.Warnings = append(c.Warnings, "unqualified-search-registries is ignored: short names always mean docker.io, as the kubelet expects")
	}
	seen := map[string]bool{}
	for i := range c.Registries {
		r := &c.Registries[i]
		if r.Prefix == "" {
			r.Prefix = r.Location
		}
		if r.Prefix == "" {
			return nil, fmt.Errorf("registry %d has neither prefix nor location", i+1)
		}
		if err := checkPrefix(r.Prefix); err != nil {
			return nil, fmt.Errorf("registry %d: prefix %q: %w", i+1, r.Prefix, err)
		}
		if strings.HasPrefix(r.Prefix, "*.") && r.Location != "" {
			return nil, fmt.Errorf("registry %d: wildcard prefix %q cannot have a location", i+1, r.Prefix)
		}
		if seen[r.Prefix] {
			return nil, fmt.Errorf("registry %d: prefix %q is configured twice", i+1, r.Prefix)
		}
		seen[r.Prefix] = true
		for _, loc := range append([]string{r.Location}, mirrorLocations(r.Mirrors)...) {
			if strings.Contains(loc, "://") {
				return nil, fmt.Errorf("registry %q: location %q must not have a scheme (use insecure = true for http)", r.Prefix, loc)
			}
		}
		for _, m := range r.Mirrors {
			if m.Location == "" {
				return nil, fmt.Errorf("registry %q: a mirror has no location", r.Prefix)
			}
		}
		if err := checkPullFromMirror(r.PullFromMirror); err != nil {
			return nil, fmt.Errorf("registry %q: %w", r.Prefix, err)
		}
		for _, m := range r.Mirrors {
			if err := checkPullFromMirror(m.PullFromMirror); err != nil {
				return nil, fmt.Errorf("registry %q mirror %q: %w", r.Prefix, m.Location, err)
			}
		}
	}
	return &c, nil
}

func mirrorLocations(ms []Mirror) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Location
	}
	return out
}

func checkPrefix(p string) error {
	if strings.Contains(p, "://") {
		return errors.New("must not have a scheme")
	}
	if strings.HasPrefix(p, "*.") {
		if strings.ContainsAny(p[2:], "*/") {
			return errors.New("a wildcard prefix is *.domain alone")
		}
		return nil
	}
	if strings.Contains(p, "*") {
		return errors.New("* is allowed only as the first label, as in *.example.com")
	}
	return nil
}

func checkPullFromMirror(v string) error {
	switch v {
	case "", "all", "digest-only", "tag-only":
		return nil
	}
	return fmt.Errorf("pull-from-mirror %q is not all, digest-only or tag-only", v)
}

// match finds the registry whose prefix matches repo (domain/path) most
// specifically, and the length it matched.
func (c *Config) match(repo string) *Registry {
	var best *Registry
	bestLen := -1
	for i := range c.Registries {
		r := &c.Registries[i]
		if n := matchLen(r.Prefix, repo); n > bestLen {
			best, bestLen = r, n
		}
	}
	return best
}

// matchLen is how much of repo a prefix covers, or -1. A prefix matches at
// a path boundary only: "example.com/foo" covers "example.com/foo/bar" but
// not "example.com/foobar". "*.example.com" covers any subdomain's images
// and counts as shorter than any exact prefix.
func matchLen(prefix, repo string) int {
	if strings.HasPrefix(prefix, "*.") {
		domain, _, _ := strings.Cut(repo, "/")
		host, _, _ := strings.Cut(domain, ":")
		if strings.HasSuffix(host, prefix[1:]) {
			return len(prefix) - 1
		}
		return -1
	}
	if repo == prefix || strings.HasPrefix(repo, prefix+"/") {
		return len(prefix) + 1000
	}
	return -1
}

// Endpoints lists where to pull n from, in order. A blocked registry is
// FailedPrecondition: the operator, not the request, decides that.
func (c *Config) Endpoints(n reference.Named) ([]Endpoint, error) {
	repo := n.Repository()
	r := c.match(repo)
	if r == nil {
		return []Endpoint{{Ref: n}}, nil
	}
	if r.Blocked {
		return nil, fmt.Errorf("registry %q is blocked by the registries configuration: %w", r.Prefix, errdefs.ErrFailedPrecondition)
	}
	// What the prefix covers in this name: for *.domain, the whole host.
	matched := r.Prefix
	if strings.HasPrefix(matched, "*.") {
		matched = n.Domain
	}
	var eps []Endpoint
	byDigest := n.Digest != ""
	for _, m := range r.Mirrors {
		mode := m.PullFromMirror
		if mode == "" {
			mode = r.PullFromMirror
		}
		if r.MirrorByDigestOnly && mode == "" {
			mode = "digest-only"
		}
		if (mode == "digest-only" && !byDigest) || (mode == "tag-only" && byDigest) {
			continue
		}
		ref, err := rewrite(n, matched, m.Location)
		if err != nil {
			return nil, fmt.Errorf("mirror %q of %q: %w", m.Location, r.Prefix, err)
		}
		eps = append(eps, Endpoint{Ref: ref, Insecure: m.Insecure, Mirror: true})
	}
	loc := r.Location
	if loc == "" {
		loc = matched
	}
	ref, err := rewrite(n, matched, loc)
	if err != nil {
		return nil, fmt.Errorf("location %q of %q: %w", loc, r.Prefix, err)
	}
	eps = append(eps, Endpoint{Ref: ref, Insecure: r.Insecure})
	return eps, nil
}

// rewrite replaces prefix in n's repository with location.
func rewrite(n reference.Named, prefix, location string) (reference.Named, error) {
	repo := location + strings.TrimPrefix(n.Repository(), prefix)
	s := repo + ":" + n.Tag
	if n.Digest != "" {
		s = repo + "@" + n.Digest
	}
	out, err := reference.Parse(s)
	if err != nil {
		return out, err
	}
	// A location that is a bare registry host must still be one: Parse
	// would otherwise read "host/name" as docker.io/host/name when the
	// host has no dot or port.
	if domain, _, _ := strings.Cut(location, "/"); out.Domain != domain && domain != "docker.io" {
		return out, fmt.Errorf("%q is not a registry host (add a port or a domain)", domain)
	}
	return out, nil
}

// Hosts lists the prefixes configured, for logs.
func (c *Config) Hosts() []string {
	var out []string
	for _, r := range c.Registries {
		out = append(out, r.Prefix)
	}
	sort.Strings(out)
	return out
}
