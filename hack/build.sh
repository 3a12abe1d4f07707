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
# The per-pod processes' binary, small on purpose; crid finds it beside itself.
go build -trimpath -ldflags "-s -w" -o _output/bin/crid-monitor ./cmd/crid-monitor
