package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/failpoint"
	"github.com/crid-dev/crid/pkg/image/reference"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/store"
)

// Image is one pulled image: its config, its layers, and every name it was
// pulled under. Its ID is the digest of its config, so the same image
// pulled from two registries is one record.
type Image struct {
	ID          string          `json:"id"`
	RepoTags    []string        `json:"repoTags"`
	RepoDigests []string        `json:"repoDigests"`
	Size        uint64          `json:"size"`
	Config      json.RawMessage `json:"config"`
	Layers      []Layer         `json:"layers"`
	Pulled      time.Time       `json:"pulled"`
}

// Layer is one layer of an image, as the manifest and the config name it.
type Layer struct {
	Digest    string `json:"digest"`  // of the compressed blob
	DiffID    string `json:"diffID"`  // of the uncompressed tar
	ChainID   string `json:"chainID"` // of the stack up to and including it
	Size      int64  `json:"size"`    // compressed
	MediaType string `json:"mediaType"`
}

// layerRecord is what the layers bucket holds for an unpacked layer.
type layerRecord struct {
	ChainID  string    `json:"chainID"`
	DiffID   string    `json:"diffID"`
	Unpacked time.Time `json:"unpacked"`
}

// Options configure a Service.
type Options struct {
	Layout         Layout
	Store          *store.Store
	RegistriesConf string
	Pinned         []string
	// StallTimeout fails a layer download that has received nothing for
	// this long.
	StallTimeout time.Duration
	// Timeouts bound each step of a registry request.
	Timeouts Timeouts
	// ParallelLayers is how many layers of one pull download at once.
	ParallelLayers int
	// OnPull, when set, hears of every pull (tests count the bytes).
	OnPull func(image string, bytes int64, took time.Duration, err error)
	// Metrics records pulls; nil records nothing.
	Metrics *metrics.Metrics
}

// Timeouts bound the steps of a registry request; zero takes the default.
type Timeouts struct {
	Connect, TLSHandshake, ResponseHeader time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = 30 * time.Second
	}
	if t.TLSHandshake <= 0 {
		t.TLSHandshake = 10 * time.Second
	}
	if t.ResponseHeader <= 0 {
		t.ResponseHeader = time.Minute
	}
	return t
}

// Service holds the images of a node and answers the CRI image calls from
// memory; the metadata store is written through and read only at start.
type Service struct {
	opts Options

	mu     sync.RWMutex
	images map[string]*Image // by ID
	byName map[string]string // normalised tag or digest name -> ID
	pinned map[string]bool   // normalised names and IDs

	pulls   sharedWork         // by normalised name: one pull of an image at a time
	unpacks singleflight.Group // by chain ID: one unpack of a layer at a time

	layerMu  sync.Mutex
	inFlight map[string]int      // chain IDs a pull is using but no image records yet
	holders  map[string][]string // owner (a container) -> chain IDs it stands on

	// One HTTP transport for verified TLS and one for registries marked
	// insecure, shared by every pull: their connections are reused, and
	// idle ones close after a while. A transport per pull kept each pull's
	// connections (and two goroutines each) open, never reused, until
	// they idled out.
	secure, insecure *http.Transport
}

// New loads the images recorded in the store, forgetting those whose
// layers are gone. Layers on disk that nothing uses (and temporary dirs
// of interrupted pulls) are cleaned by CollectLayers, which the caller
// runs once the containers have held theirs: so a crash at any point of
// a pull leaves nothing a later pull could mistake for complete, and no
// layer a container stands on is freed beneath it.
func New(opts Options) (*Service, error) {
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = time.Minute
	}
	if opts.ParallelLayers <= 0 {
		opts.ParallelLayers = 3
	}
	if err := opts.Layout.Ensure(); err != nil {
		return nil, err
	}
	s := &Service{
		opts:     opts,
		images:   map[string]*Image{},
		byName:   map[string]string{},
		pinned:   map[string]bool{},
		inFlight: map[string]int{},
		holders:  map[string][]string{},
		secure:   newTransport(false, opts.Timeouts.withDefaults()),
		insecure: newTransport(true, opts.Timeouts.withDefaults()),
	}
	for _, p := range opts.Pinned {
		if n, err := reference.Parse(p); err == nil {
			s.pinned[n.String()] = true
		} else {
			s.pinned[p] = true
		}
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) load() error {
	layers := map[string]bool{}
	err := s.opts.Store.ForEach(store.BucketLayers, func(key string, raw []byte) error {
		if _, err := os.Stat(s.layerDir(key)); err != nil {
			klog.InfoS("Dropping the record of a layer whose directory is gone", "chainID", key)
			return nil
		}
		layers[key] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("load layers: %w", err)
	}
	var broken []string
	err = s.opts.Store.ForEach(store.BucketImages, func(key string, raw []byte) error {
		img := &Image{}
		if err := json.Unmarshal(raw, img); err != nil {
			return fmt.Errorf("decode image %s: %w", key, err)
		}
		for _, l := range img.Layers {
			if !layers[l.ChainID] {
				broken = append(broken, key)
				return nil
			}
		}
		s.index(img)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load images: %w", err)
	}
	if len(broken) > 0 {
		klog.InfoS("Forgetting images whose layers are gone; pull them again", "images", broken)
		if err := s.opts.Store.Update(func(tx *store.Tx) error {
			for _, id := range broken {
				if err := tx.Delete(store.BucketImages, id); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// Hold marks chain IDs as used by owner (a container's root filesystem)
// until Release: no image removal or collection frees them meanwhile.
// Holds are not recorded: their owners hold again as crid starts, before
// CollectLayers runs.
func (s *Service) Hold(owner string, chainIDs []string) {
	s.layerMu.Lock()
	s.holders[owner] = append([]string(nil), chainIDs...)
	s.layerMu.Unlock()
}

// Release ends owner's hold.
func (s *Service) Release(owner string) {
	s.layerMu.Lock()
	delete(s.holders, owner)
	s.layerMu.Unlock()
}

// CollectLayers frees every layer no image, no holder and no pull in
// progress uses, and temporary dirs of pulls a crash cut short. crid
// runs it at start-up once every container has held its layers; image
// removal runs it after.
func (s *Service) CollectLayers() error {
	freed, err := s.collectLayers()
	if len(freed) > 0 {
		klog.V(2).InfoS("Layers freed", "chainIDs", freed)
	}
	return err
}

// index adds img to the in-memory maps. Callers hold mu, or own s alone.
func (s *Service) index(img *Image) {
	s.images[img.ID] = img
	for _, n := range img.RepoTags {
		s.byName[n] = img.ID
	}
	for _, n := range img.RepoDigests {
		s.byName[n] = img.ID
	}
}

func (s *Service) layerDir(chainID string) string {
	return filepath.Join(s.opts.Layout.LayersDir(), strings.Replace(chainID, ":", "-", 1))
}

// LayerDirs returns the unpacked directories of img's layers, lowest first,
// for stacking with overlayfs.
func (s *Service) LayerDirs(img *Image) []string {
	dirs := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		dirs[i] = s.layerDir(l.ChainID)
	}
	return dirs
}

var (
	fullID = regexp.MustCompile(`^(sha256:)?[0-9a-f]{64}$`)
	idPart = regexp.MustCompile(`^(sha256:)?[0-9a-f]{6,63}$`)
)

// Get finds an image by ID (sha256:... or the bare hex), by a unique ID
// prefix of at least six digits, or by any of its names, normalised.
func (s *Service) Get(ref string) (*Image, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lookup(ref)
}

func (s *Service) lookup(ref string) (*Image, error) {
	if fullID.MatchString(ref) {
		id := ref
		if !strings.HasPrefix(id, "sha256:") {
			id = "sha256:" + id
		}
		if img, ok := s.images[id]; ok {
			return img, nil
		}
	}
	if n, err := reference.Parse(ref); err == nil {
		if id, ok := s.byName[n.String()]; ok {
			return s.images[id], nil
		}
	}
	if idPart.MatchString(ref) {
		prefix := ref
		if !strings.HasPrefix(prefix, "sha256:") {
			prefix = "sha256:" + prefix
		}
		var found *Image
		for id, img := range s.images {
			if strings.HasPrefix(id, prefix) {
				if found != nil {
					return nil, fmt.Errorf("image ID prefix %q is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
				}
				found = img
			}
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

// List returns every image, ordered by ID.
func (s *Service) List() []*Image {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Image, 0, len(s.images))
	for _, img := range s.images {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Pinned says whether img is one the configuration keeps.
func (s *Service) Pinned(img *Image) bool {
	if s.pinned[img.ID] {
		return true
	}
	for _, n := range append(append([]string(nil), img.RepoTags...), img.RepoDigests...) {
		if s.pinned[n] {
			return true
		}
	}
	return false
}

// Remove deletes the image ref names, with all its names, as the kubelet's
// image GC expects, then frees the layers nothing uses any more. Removing
// an image that is not there is not an error: a retried call succeeds.
func (s *Service) Remove(ctx context.Context, ref string) error {
	s.mu.Lock()
	img, err := s.lookup(ref)
	if err != nil {
		s.mu.Unlock()
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		return err
	}
	if err := s.opts.Store.Delete(store.BucketImages, img.ID); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("remove image %s: %w", img.ID, err)
	}
	delete(s.images, img.ID)
	for n, id := range s.byName {
		if id == img.ID {
			delete(s.byName, n)
		}
	}
	s.mu.Unlock()
	failpoint.Hit("image.remove.deleted")
	klog.InfoS("Image removed", "id", img.ID, "tags", img.RepoTags)
	if err := s.CollectLayers(); err != nil {
		return fmt.Errorf("free layers of %s: %w", img.ID, err)
	}
	return nil
}

// collectLayers removes every layer directory that no image, no container
// and no pull in progress uses, with its record, and every temporary
// directory no pull is writing.
func (s *Service) collectLayers() ([]string, error) {
	s.layerMu.Lock()
	defer s.layerMu.Unlock()
	used := map[string]bool{}
	s.mu.RLock()
	for _, img := range s.images {
		for _, l := range img.Layers {
			used[l.ChainID] = true
		}
	}
	s.mu.RUnlock()
	for _, ids := range s.holders {
		for _, id := range ids {
			used[id] = true
		}
	}
	for id := range s.inFlight {
		used[id] = true
	}
	entries, err := os.ReadDir(s.opts.Layout.LayersDir())
	if err != nil {
		return nil, err
	}
	var freed []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			if s.unpacking(name) {
				continue
			}
		} else {
			chainID := strings.Replace(name, "-", ":", 1)
			if used[chainID] {
				continue
			}
			if err := s.opts.Store.Delete(store.BucketLayers, chainID); err != nil {
				return freed, err
			}
			failpoint.Hit("image.gc.layer-forgotten")
			freed = append(freed, chainID)
		}
		if err := os.RemoveAll(filepath.Join(s.opts.Layout.LayersDir(), name)); err != nil {
			return freed, fmt.Errorf("remove layer dir %s: %w", name, err)
		}
	}
	return freed, nil
}

// unpacking says whether a temporary dir belongs to a pull in progress.
// Callers hold layerMu.
func (s *Service) unpacking(tmpName string) bool {
	for id := range s.inFlight {
		if strings.HasPrefix(tmpName, tmpPrefix+strings.Replace(id, ":", "-", 1)+"-") {
			return true
		}
	}
	return false
}

// hold marks chain IDs as in use by a pull until release is called, so a
// concurrent RemoveImage does not free a layer the pull just unpacked.
func (s *Service) hold(chainIDs []string) (release func()) {
	s.layerMu.Lock()
	for _, id := range chainIDs {
		s.inFlight[id]++
	}
	s.layerMu.Unlock()
	return func() {
		s.layerMu.Lock()
		for _, id := range chainIDs {
			if s.inFlight[id]--; s.inFlight[id] <= 0 {
				delete(s.inFlight, id)
			}
		}
		s.layerMu.Unlock()
	}
}
