#!/usr/bin/env bash
# Builds crid into _output/bin/crid, stamped with its version and commit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin
commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ]; then commit=$commit-dirty; fi
mkdir -p "$repo/_output/bin"
cd "$repo"
go build -trimpath -ldflags "-X github.com/crid-dev/crid/pkg/version.GitCommit=$commit" -o _output/bin/crid ./cmd/crid
# The per-pod processes' binaries, small on purpose; crid finds them beside
# itself: crid-monitor (Go: inits, the monitor's helpers) and
# crid-podmon (C: a pod's monitor and infra process). The same flags as
# test/harness.
# crid-monitor runs two or three times per container start: linked
# statically (glibc, libseccomp), each exec skips the dynamic loader (0.8
# ms of its 3 here); netgo and osusergo keep net's resolver and os/user in
# Go, which static glibc cannot serve.
go build -trimpath -tags netgo,osusergo -ldflags "-s -w -linkmode external -extldflags -static" -o _output/bin/crid-monitor ./cmd/crid-monitor
"${CC:-cc}" -O2 -Wall -Wextra -Werror -static -o _output/bin/crid-podmon cmd/crid-podmon/podmon.c cmd/crid-podmon/infra.c
