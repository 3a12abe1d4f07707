package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/server"
)

// importTimeout bounds an import: a control plane's images, unpacked on a
// slow disk, take a minute or two.
const importTimeout = 30 * time.Minute

// images runs `crid images import [--name REF] FILE|-`: the running crid
// (on the configured socket) loads the archive. "-" reads it from stdin,
// as `kind load` and `ctr images import -` do, through a file the daemon
// can open; the file goes when the import ends.
func images(cfg config.Config, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		return errors.New("usage: crid images import [--name REF] FILE|-")
	}
	fs := flag.NewFlagSet("crid images import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name (registry/repository:tag) of the archive's one image, instead of the archive's names")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: crid images import [--name REF] FILE|-")
	}
	file := fs.Arg(0)
	if file == "-" {
		tmp, err := os.CreateTemp("", "crid-import-*.tar")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		_, err = io.Copy(tmp, stdin)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("read the archive from stdin: %w", err)
		}
		file = tmp.Name()
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return err
	}
	conn, err := grpc.NewClient("unix://"+cfg.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	req, err := structpb.NewStruct(map[string]any{"path": abs, "name": *name})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), importTimeout)
	defer cancel()
	resp := new(runtime.ListImagesResponse)
	if err := conn.Invoke(ctx, server.ImportMethod, req, resp); err != nil {
		return fmt.Errorf("import %s through %s: %w", file, cfg.Listen, err)
	}
	for _, img := range resp.Images {
		names := strings.Join(img.RepoTags, " ")
		if names == "" {
			names = "(no name)"
		}
		fmt.Fprintf(stdout, "imported %s %s\n", img.Id, names)
	}
	return nil
}
