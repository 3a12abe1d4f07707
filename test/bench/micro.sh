#!/usr/bin/env bash
# Go benchmarks of crid's hot pieces, in the format benchstat compares:
#   test/bench/micro.sh > new.txt; git stash; test/bench/micro.sh > old.txt; benchstat old.txt new.txt
# (benchstat: go run golang.org/x/perf/cmd/benchstat@latest). COUNT runs
# of each (default 6). Layers unpack to TMPDIR: keep it on the disk crid's
# root is on to measure that disk, or a tmpfs to measure crid alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/go/bin
count=${COUNT:-6}
go test -run '^$' -bench . -benchmem -count "$count" \
	./pkg/oci/generate/ ./pkg/records/ ./pkg/oci/monitor/ ./pkg/image/archive/ \
	./pkg/container/ ./pkg/store/ ./pkg/server/ ./pkg/cni/ ./pkg/oci/seccomp/ ./pkg/wirelist/
