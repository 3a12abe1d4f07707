#!/usr/bin/env bash
# Side-by-side pull benchmark: one multi-layer image of about 200 MiB,
# pulled and unpacked from a loopback docker-registry by crid and by
# containerd (Debian's 1.6, CRI plugin, overlayfs snapshotter), ROUNDS times
# each, alternating, in one run. Prints each time and the crid/containerd
# ratio of the medians. Not part of the pass/fail suite.
#
#   test/bench/pull.sh [ROUNDS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin
rounds=${1:-3}
[ "$(id -u)" = 0 ] || { echo "pull.sh: needs root" >&2; exit 1; }

"$repo/hack/install-deps.sh" test
dpkg-query -W -f='${Status}' containerd 2>/dev/null | grep -q "install ok installed" || {
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd runc >/dev/null
}
"$repo/hack/build.sh"
crictl=${CRID_TOOLS_DIR:-$repo/_output/tools}/crictl

work=$(mktemp -d /var/tmp/crid-bench-pull.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	umount -R "$work/containerd-root" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $reg
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
until curl -fsS "http://$reg/v2/" >/dev/null 2>&1; do sleep 0.1; done
image=$reg/bench/multilayer:1
(cd "$repo" && go run ./test/bench/mkimage -ref "$image" -layers 5 -size 200)

# crid on a scratch root.
cat >"$work/crid.toml" <<TOML
root = "$work/crid-root"
runroot = "$work/crid-run"
listen = "$work/crid.sock"
[metrics]
address = ""
TOML
"$repo/_output/bin/crid" --config "$work/crid.toml" >"$work/crid.log" 2>&1 &
pids+=($!)

# containerd on a scratch root, told that the registry speaks http.
mkdir -p "$work/certs.d/$reg"
printf 'server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$reg" "$reg" >"$work/certs.d/$reg/hosts.toml"
cat >"$work/containerd.toml" <<TOML
version = 2
root = "$work/containerd-root"
state = "$work/containerd-state"
[grpc]
  address = "$work/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$work/certs.d"
TOML
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
pids+=($!)

for sock in crid containerd; do
	for _ in $(seq 100); do "$crictl" --runtime-endpoint "unix://$work/$sock.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
done

export CRI_CONFIG_FILE=/dev/null
pull() { # endpoint -> seconds
	local ep=unix://$work/$1.sock start end
	start=$(date +%s.%N)
	"$crictl" --image-endpoint "$ep" --runtime-endpoint "$ep" pull "$image" >/dev/null
	end=$(date +%s.%N)
	"$crictl" --image-endpoint "$ep" --runtime-endpoint "$ep" rmi "$image" >/dev/null
	echo "$end - $start" | bc
}
crid_times=() containerd_times=()
for i in $(seq "$rounds"); do
	sync
	crid_times+=("$(pull crid)")
	sync
	containerd_times+=("$(pull containerd)")
	echo "round $i: crid ${crid_times[-1]}s, containerd ${containerd_times[-1]}s"
done
# Each crid pull must really have fetched the image, not found it cached.
fetched=$(grep -o 'fetchedBytes=[0-9]*' "$work/crid.log" | cut -d= -f2)
echo "crid fetched bytes per pull: $(echo $fetched)"
for b in $fetched; do [ "$b" -gt 100000000 ] || { echo "pull.sh: a crid pull fetched only $b bytes" >&2; exit 1; }; done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
c=$(median "${crid_times[@]}")
d=$(median "${containerd_times[@]}")
echo "pull+unpack of $image (5 layers, 200 MiB): crid median ${c}s, containerd median ${d}s, ratio $(echo "scale=2; $c / $d" | bc)"
