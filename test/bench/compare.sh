#!/usr/bin/env bash
# Two builds of crid side by side, in one run, alternating: REV (a commit,
# built in a scratch worktree) against the working tree, timed over gRPC
# by test/bench/lifecycle with the same CNI chain (each on a bridge of its
# own). For refactors ("no RPC slower") and performance work. Not part of
# the pass/fail suite.
#
#   test/bench/compare.sh REV [ROUNDS] [PODS] [DENSITY] [DENSITY_NETWORK]
#
# DENSITY and DENSITY_NETWORK are lifecycle.sh's: with DENSITY > 0, that
# many pods of three containers on each crid, then the relist calls.
set -euo pipefail
rev=${1:?usage: compare.sh REV [ROUNDS] [PODS] [DENSITY] [DENSITY_NETWORK]}
rounds=${2:-20}
npods=${3:-10}
density=${4:-0}
density_net=${5:-cni}
. "$(dirname "$0")/lib.sh"
bench_endpoints="before after" # whose pods bench_cleanup removes
bench_links="cmp71br0 cmp72br0" # the bridges their chains make (start below)
bench_init compare
bench_registry
(cd "$repo" && for h in pause fakenginx nnp; do CGO_ENABLED=0 go build -o "$work/helpers/$h" "./test/images/$h"; done &&
	go run ./test/images/build -registry "$reg" -helpers "$work/helpers" -registries-conf "$work/registries.conf" >/dev/null)
image=registry.k8s.io/e2e-test-images/busybox:1.29-2

# REV's binaries, from a worktree of its own (removed on the way out).
git -C "$repo" worktree add -q --detach "$work/rev" "$rev"
trap 'git -C "$repo" worktree remove --force "$work/rev" 2>/dev/null || true; bench_cleanup' EXIT
# Built by REV's own hack/build.sh: as REV ships, flags and all.
(cd "$work/rev" && ./hack/build.sh && cp -r _output/bin "$work/rev-bin")

# One crid per build: its own root, socket, NRI socket and bridge.
start() { # name binary-dir subnet-octet
	local name=$1 bin=$2 net=$3
	mkdir -p "$work/$name-net.d"
	sed "s/crid0/cmp${net}br0/; s#10.88.0.0/16#10.$net.0.0/16#; s/\"name\": \"crid\"/\"name\": \"cmp-$name\"/" \
		"$repo/deploy/cni/10-crid-bridge.conflist" >"$work/$name-net.d/10-crid.conflist"
	cat >"$work/$name.toml" <<TOML
root = "$work/$name-root"
runroot = "$work/$name-run"
listen = "$work/$name.sock"
[image]
registries_conf = "$work/registries.conf"
[network]
cni_config_dir = "$work/$name-net.d"
[metrics]
address = ""
[nri]
socket_path = "$work/$name-nri.sock"
plugin_path = "$work/$name-nri-plugins"
plugin_config_path = "$work/$name-nri-conf.d"
TOML
	"$bin/crid" --config "$work/$name.toml" >"$work/$name.log" 2>&1 &
	pids+=($!)
	eval "${name}_pid=$!"
	for _ in $(seq 100); do c "$name" version >/dev/null 2>&1 && return; sleep 0.1; done
	echo "compare.sh: crid $name did not start:" >&2
	tail "$work/$name.log" >&2
	exit 1
}
start before "$work/rev-bin" 71
start after "$repo/_output/bin" 72
c before pull "$image" >/dev/null
c after pull "$image" >/dev/null
echo "before: $rev ($(git -C "$repo" log -1 --format=%s "$rev" | cut -c1-60))"
echo "after:  the working tree ($(git -C "$repo" log -1 --format=%h) $(git -C "$repo" status --porcelain | grep -q . && echo '+ changes'))"
(cd "$repo" && go run ./test/bench/lifecycle -rounds "$rounds" -keep "$npods" -logs "$work/logs" \
	-density "$density" -density-network "$density_net" \
	-rt "name=after,sock=$work/after.sock,image=$image,pid=$after_pid,perpod=^crid(-podmon| monitor) $work/after-run/" \
	-rt "name=before,sock=$work/before.sock,image=$image,pid=$before_pid,perpod=^crid(-podmon| monitor) $work/before-run/")
