package image

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/errdefs/errgrpc"
	"github.com/crid-dev/crid/pkg/failpoint"
	"github.com/crid-dev/crid/pkg/image/reference"
	"github.com/crid-dev/crid/pkg/image/registries"
	"github.com/crid-dev/crid/pkg/store"
)

// Auth is what the kubelet passes for a registry (CRI AuthConfig).
type Auth struct {
	Username, Password, Auth, IdentityToken, RegistryToken string
}

func (a Auth) authenticator() authn.Authenticator {
	if a == (Auth{}) {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{
		Username: a.Username, Password: a.Password, Auth: a.Auth,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
	})
}

// Pull fetches image (any form the kubelet sends) and returns its record.
// Concurrent pulls of one name share one pull; layers already unpacked are
// not fetched again.
func (s *Service) Pull(ctx context.Context, image string, auth Auth) (*Image, error) {
	n, err := reference.Parse(image)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	v, err := s.pulls.Do(ctx, n.String(), func(ctx context.Context) (any, error) {
		img, bytes, err := s.pull(ctx, n, auth)
		if s.opts.OnPull != nil {
			s.opts.OnPull(n.String(), bytes, time.Since(start), err)
		}
		s.opts.Metrics.Pull(pullResult(err), bytes, time.Since(start))
		return img, err
	})
	if err != nil {
		klog.InfoS("Pull failed", "image", n.String(), "took", time.Since(start), "error", err)
		return nil, err
	}
	return v.(*Image), nil
}

func (s *Service) pull(ctx context.Context, n reference.Named, auth Auth) (*Image, int64, error) {
	regs, err := registries.Load(s.opts.RegistriesConf)
	if err != nil {
		return nil, 0, fmt.Errorf("%v: %w", err, errdefs.ErrFailedPrecondition)
	}
	for _, w := range regs.Warnings {
		klog.V(2).InfoS("registries.conf", "file", s.opts.RegistriesConf, "warning", w)
	}
	endpoints, err := regs.Endpoints(n)
	if err != nil {
		return nil, 0, err
	}
	var errs []error
	for _, ep := range endpoints {
		img, bytes, err := s.pullFrom(ctx, n, ep, auth)
		if err == nil {
			return img, bytes, nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", ep.Ref.Repository(), err))
		if ctx.Err() != nil {
			break
		}
		if ep.Mirror {
			klog.InfoS("Mirror failed, trying the next place", "image", n.String(), "mirror", ep.Ref.String(), "error", err)
		}
	}
	return nil, 0, fmt.Errorf("pull %s: %w", n, errors.Join(errs...))
}

// HostArchitecture is the architecture images are pulled for.
func HostArchitecture() string { return runtime.GOARCH }

// hostPlatform is what an index is resolved to.
func hostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// newTransport is the HTTP transport of every pull. Each step of a request
// has its own timeout, as a context deadline would cover the whole pull:
// a registry that accepts the connection and never answers otherwise
// holds PullImage for ever (the stall timeout covers layer bodies only).
func newTransport(insecure bool, t Timeouts) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.IdleConnTimeout = 30 * time.Second
	tr.DialContext = (&net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = t.TLSHandshake
	tr.ResponseHeaderTimeout = t.ResponseHeader
	if insecure {
		// Only for registries the operator marked insecure.
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec
	}
	return tr
}

// retryable says which failed registry requests are tried again: broken
// connections, as the registry client does by default, but never a
// timeout. Three tries of a registry that does not answer took three
// times the configured timeout (and again for the plain-HTTP fallback);
// the kubelet backs off and pulls again anyway.
func retryable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

func (s *Service) transportFor(insecure bool) http.RoundTripper {
	if insecure {
		return s.insecure
	}
	return s.secure
}

func (s *Service) pullFrom(ctx context.Context, want reference.Named, ep registries.Endpoint, auth Auth) (*Image, int64, error) {
	var opts []name.Option
	if ep.Insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(ep.Ref.String(), opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuth(auth.authenticator()),
		remote.WithPlatform(hostPlatform()), remote.WithTransport(s.transportFor(ep.Insecure)),
		remote.WithRetryPredicate(retryable))
	if err != nil {
		return nil, 0, registryErr(err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, 0, fmt.Errorf("resolve %s for %s: %w", ref, hostPlatform().String(), registryErr(err))
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, 0, fmt.Errorf("config of %s: %w", ref, err)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return nil, 0, fmt.Errorf("image %s is for %s, not linux: %w", ref, cfg.OS, errdefs.ErrFailedPrecondition)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, 0, err
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, 0, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, 0, fmt.Errorf("layers of %s: %w", ref, err)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(diffIDs) != len(layers) {
		return nil, 0, fmt.Errorf("image %s: the manifest has %d layers and the config %d diff IDs: refused", ref, len(layers), len(diffIDs))
	}
	chains := chainIDs(diffIDs)
	metas := make([]Layer, len(layers))
	size := uint64(len(rawCfg))
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, 0, err
		}
		sz, err := l.Size()
		if err != nil {
			return nil, 0, err
		}
		mt, _ := l.MediaType()
		metas[i] = Layer{Digest: d.String(), DiffID: diffIDs[i].String(), ChainID: chains[i], Size: sz, MediaType: string(mt)}
		size += uint64(sz)
	}

	openers := make([]blobOpener, len(layers))
	for i, l := range layers {
		openers[i] = l.Compressed
	}
	total, reused, err := s.unpackAll(ctx, metas, openers)
	if err != nil {
		return nil, 0, err
	}
	rec, err := s.record(want, desc.Digest.String(), id.String(), rawCfg, metas, size)
	if err != nil {
		return nil, 0, err
	}
	failpoint.Hit("image.pull.recorded")
	klog.InfoS("Image pulled", "image", want.String(), "from", ep.Ref.String(), "id", rec.ID, "layers", len(metas), "reusedLayers", reused, "fetchedBytes", total)
	s.opts.Metrics.PullLayers(len(metas)-reused, reused)
	return rec, total, nil
}

// unpackAll makes sure every layer is unpacked, ParallelLayers at a time,
// holding their chain IDs from the layer GC meanwhile, and returns the
// bytes it read.
// It answers with the bytes read and how many layers were reused: on the
// node already, or fetched by a concurrent pull sharing the work.
func (s *Service) unpackAll(ctx context.Context, metas []Layer, open []blobOpener) (int64, int, error) {
	chains := make([]string, len(metas))
	for i, m := range metas {
		chains[i] = m.ChainID
	}
	release := s.hold(chains)
	defer release()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.ParallelLayers)
	fetched := make([]int64, len(metas))
	for i := range metas {
		g.Go(func() error {
			n, err := s.ensureLayer(gctx, open[i], metas[i])
			fetched[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	var total int64
	reused := 0
	for _, n := range fetched {
		total += n
		if n == 0 {
			reused++
		}
	}
	return total, reused, nil
}

// record adds the pulled name to the image's record, creating it if this is
// the first name, and takes the tag from any image that held it before.
func (s *Service) record(n reference.Named, manifestDigest, id string, rawCfg []byte, layers []Layer, size uint64) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img := &Image{ID: id, Config: rawCfg, Layers: layers, Size: size, Pulled: time.Now()}
	if old, ok := s.images[id]; ok {
		cp := *old
		img = &cp
		img.RepoTags = append([]string(nil), old.RepoTags...)
		img.RepoDigests = append([]string(nil), old.RepoDigests...)
	}
	changed := map[string]*Image{id: img}
	// An image imported without a name is known by its ID alone.
	if n.Tag != "" && n.Path != "" {
		tag := n.String()
		if prev, ok := s.byName[tag]; ok && prev != id {
			// The tag moved: the image it named keeps its other names.
			p := *s.images[prev]
			p.RepoTags = without(p.RepoTags, tag)
			changed[prev] = &p
		}
		img.RepoTags = with(img.RepoTags, tag)
	}
	// A docker-archive has no registry manifest, so no digest to name.
	if manifestDigest != "" && n.Path != "" {
		img.RepoDigests = with(img.RepoDigests, n.WithDigest(manifestDigest).String())
	}

	err := s.opts.Store.Update(func(tx *store.Tx) error {
		for _, c := range changed {
			if err := tx.Put(store.BucketImages, c.ID, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record image %s: %w", id, err)
	}
	for _, c := range changed {
		s.index(c)
	}
	return img, nil
}

func with(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

func without(list []string, v string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// registryErr gives a registry's answer its code: a missing image is
// NotFound, refused credentials are PermissionDenied-like InvalidArgument
// (the kubelet shows the message), the rest Unknown with the text.
func registryErr(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%v: %w", strings.TrimSpace(terr.Error()), errdefs.ErrNotFound)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%v (check the pull secret): %w", strings.TrimSpace(terr.Error()), errdefs.ErrInvalidArgument)
		}
	}
	return err
}

// pullResult names a pull's outcome for its metric: success, or why it
// failed, in a few words an alert can select on.
func pullResult(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	switch errgrpc.Code(err) {
	case codes.NotFound:
		return "not_found"
	case codes.Unauthenticated, codes.PermissionDenied:
		return "unauthorized"
	case codes.InvalidArgument, codes.FailedPrecondition:
		return "refused"
	case codes.DeadlineExceeded:
		return "timeout"
	case codes.ResourceExhausted:
		return "no_space"
	}
	return "error"
}
