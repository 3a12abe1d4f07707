// Package reference normalises image names the way the kubelet and the
// other runtimes do: `busybox` is docker.io/library/busybox:latest, a name
// with a digest has no tag, and every name has a domain.
package reference

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// DefaultDomain is where names without a domain live.
const DefaultDomain = "docker.io"

// Named is a normalised image reference: Domain/Path, and either a Tag or
// a Digest.
type Named struct {
	Domain string // docker.io, registry.k8s.io, 127.0.0.1:5000
	Path   string // library/busybox
	Tag    string // latest; empty when Digest is set
	Digest string // sha256:...; empty for a tagged name
}

// Repository is Domain/Path.
func (n Named) Repository() string { return n.Domain + "/" + n.Path }

// String is the full normalised name.
func (n Named) String() string {
	if n.Digest != "" {
		return n.Repository() + "@" + n.Digest
	}
	return n.Repository() + ":" + n.Tag
}

// WithDigest is the canonical digest form of the same repository.
func (n Named) WithDigest(digest string) Named {
	return Named{Domain: n.Domain, Path: n.Path, Digest: digest}
}

// Parse normalises s. A name with both a tag and a digest is pulled by its
// digest, as containerd and CRI-O do: the tag is only a label there.
func Parse(s string) (Named, error) {
	if s == "" {
		return Named{}, fmt.Errorf("image name is empty: %w", errdefs.ErrInvalidArgument)
	}
	if strings.ToLower(s) != s && !strings.Contains(s, "@") && !strings.Contains(s, ":") {
		return Named{}, fmt.Errorf("image name %q: repository names must be lower-case: %w", s, errdefs.ErrInvalidArgument)
	}
	ref, err := name.ParseReference(s, name.WithDefaultRegistry(DefaultDomain), name.WithDefaultTag("latest"))
	if err != nil {
		return Named{}, fmt.Errorf("image name %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
	}
	n := Named{Domain: ref.Context().RegistryStr(), Path: ref.Context().RepositoryStr()}
	if n.Domain == "" || n.Path == "" || strings.HasPrefix(n.Path, "/") || strings.Contains(n.Path, "//") {
		return Named{}, fmt.Errorf("image name %q has an empty path component: %w", s, errdefs.ErrInvalidArgument)
	}
	if n.Domain == name.DefaultRegistry {
		n.Domain = DefaultDomain
	}
	switch r := ref.(type) {
	case name.Digest:
		n.Digest = r.DigestStr()
	case name.Tag:
		n.Tag = r.TagStr()
	}
	return n, nil
}
