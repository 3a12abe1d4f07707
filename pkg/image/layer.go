package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/crid-dev/crid/pkg/failpoint"
	"github.com/crid-dev/crid/pkg/image/archive"
	"github.com/crid-dev/crid/pkg/store"
)

// tmpPrefix marks a layer being unpacked. It is published by renaming it to
// its chain ID only once every check has passed.
const tmpPrefix = ".tmp-"

// chainIDs computes the chain ID of each layer from the diff IDs:
// chain(0) = diff(0), chain(n) = sha256(chain(n-1) + " " + diff(n)).
func chainIDs(diffIDs []v1.Hash) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d.String()
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1] + " " + d.String()))
		out[i] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out
}

// ensureLayer makes sure the layer is unpacked under its chain ID,
// fetching it if not. Concurrent calls for one chain ID share one unpack.
// It returns the compressed bytes it fetched (0 when already there).
func (s *Service) ensureLayer(ctx context.Context, open blobOpener, meta Layer) (int64, error) {
	// Only the caller whose function ran counts the bytes: the others
	// shared its work.
	var fetched int64
	_, err, _ := s.unpacks.Do(meta.ChainID, func() (any, error) {
		if _, err := os.Stat(s.layerDir(meta.ChainID)); err == nil {
			return nil, nil
		}
		n, err := s.unpackLayer(ctx, open, meta)
		fetched = n
		return nil, err
	})
	return fetched, err
}

// blobOpener opens a layer's blob as stored: from a registry (a v1.Layer's
// Compressed) or from an imported archive.
type blobOpener func() (io.ReadCloser, error)

// unpackLayer streams the layer blob through its digest check, the
// decompressor, the diff ID check and the extractor into a temporary dir,
// and publishes the dir only when both digests match.
func (s *Service) unpackLayer(ctx context.Context, open blobOpener, meta Layer) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	tmp, err := os.MkdirTemp(s.opts.Layout.LayersDir(), tmpPrefix+safeName(meta.ChainID)+"-")
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", meta.Digest, err)
	}
	published := false
	defer func() {
		if !published {
			os.RemoveAll(tmp)
		}
	}()

	rc, err := open()
	if err != nil {
		return 0, fmt.Errorf("fetch layer %s: %w", meta.Digest, err)
	}
	defer rc.Close()
	compressed := &progressReader{r: rc, h: sha256.New()}
	compressed.touch()
	stop := watchStall(ctx, cancel, compressed, s.opts.StallTimeout)
	defer stop()

	extractErr := extract(tmp, compressed, meta.DiffID)
	// Read the blob to its end whatever happened: the digest covers every
	// byte, and a layer that was tampered with is reported as such, not as
	// the decompression or tar error the tampering caused.
	_, drainErr := io.Copy(io.Discard, compressed)
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		return 0, fmt.Errorf("layer %s: %w", meta.Digest, cause)
	}
	if got := "sha256:" + hex.EncodeToString(compressed.h.Sum(nil)); got != meta.Digest {
		err := fmt.Errorf("layer %s: content does not match its digest (got %s after %d bytes): refused", meta.Digest, got, compressed.n.Load())
		if drainErr != nil {
			err = fmt.Errorf("%w (%v)", err, drainErr)
		}
		return 0, err
	}
	if extractErr != nil {
		return 0, layerErr(ctx, meta, extractErr)
	}
	if drainErr != nil {
		return 0, layerErr(ctx, meta, drainErr)
	}

	// Record first, then rename: a crash between the two leaves a record
	// without a dir, which start-up drops, and never a dir that looks
	// complete without having been checked.
	failpoint.Hit("image.pull.unpacked")
	if err := s.opts.Store.Put(store.BucketLayers, meta.ChainID, layerRecord{ChainID: meta.ChainID, DiffID: meta.DiffID, Unpacked: time.Now()}); err != nil {
		return 0, err
	}
	failpoint.Hit("image.pull.layer-recorded")
	if err := os.Rename(tmp, s.layerDir(meta.ChainID)); err != nil {
		return 0, fmt.Errorf("publish layer %s: %w", meta.ChainID, err)
	}
	failpoint.Hit("image.pull.layer-published")
	published = true
	return compressed.n.Load(), nil
}

func safeName(chainID string) string {
	return string(bytes.Replace([]byte(chainID), []byte(":"), []byte("-"), 1))
}

// layerErr prefers the reason the download was cancelled (a stall) over
// the read error the cancellation caused.
func layerErr(ctx context.Context, meta Layer, err error) error {
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		err = cause
	}
	return fmt.Errorf("layer %s: %w", meta.Digest, err)
}

// progressReader counts and hashes what passes, and when it last moved.
type progressReader struct {
	r    io.Reader
	h    hash.Hash
	n    atomic.Int64
	last atomic.Int64 // unix nanoseconds
}

func (p *progressReader) touch() { p.last.Store(time.Now().UnixNano()) }

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.h.Write(b[:n])
		p.n.Add(int64(n))
		p.touch()
	}
	return n, err
}

// StallError is a download that stopped making progress.
type StallError struct{ After time.Duration }

func (e *StallError) Error() string {
	return fmt.Sprintf("download stalled: no data for %s", e.After)
}

// watchStall cancels ctx when p has not moved for timeout. The returned
// function stops the watcher; the caller owns it.
func watchStall(ctx context.Context, cancel context.CancelCauseFunc, p *progressReader, timeout time.Duration) (stop func()) {
	done := make(chan struct{})
	tick := timeout / 10
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if time.Since(time.Unix(0, p.last.Load())) > timeout {
					cancel(&StallError{After: timeout})
					if c, ok := p.r.(io.Closer); ok {
						c.Close() // unblock a read stuck on the network
					}
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress picks the decompressor from the stream's first bytes, not the
// media type: registries and builders mislabel layers often enough that
// every runtime sniffs.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return gzip.NewReader(br)
	case bytes.HasPrefix(head, zstdMagic):
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// extract decompresses the layer and unpacks it into dir, checking the
// uncompressed stream against the config's diff ID.
func extract(dir string, compressed io.Reader, diffID string) error {
	raw, err := decompress(compressed)
	if err != nil {
		return err
	}
	defer raw.Close()
	diff := sha256.New()
	tee := io.TeeReader(raw, diff)
	if _, err := archive.Apply(dir, tee, archive.Options{NoOwnership: os.Geteuid() != 0}); err != nil {
		return err
	}
	// The tar ends before the stream does (padding, the compressor's
	// trailer): read to the end so the diff ID covers every byte.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(diff.Sum(nil)); got != diffID {
		return fmt.Errorf("uncompressed digest %s does not match the config's diff ID %s: refused", got, diffID)
	}
	return nil
}
