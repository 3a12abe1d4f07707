#!/usr/bin/env bash
# Builds what the test image sets are made of into _output/helpers: the
# static helpers images carry (pause, fakenginx, nnp, nmeter) and
# build-images, the tool that packs and pushes the sets (test/images/build).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin
cd "$repo"
mkdir -p _output/helpers
for h in pause fakenginx nnp nmeter; do
	CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "_output/helpers/$h" "./test/images/$h"
done
go build -o _output/helpers/build-images ./test/images/build
