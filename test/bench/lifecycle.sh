#!/usr/bin/env bash
# Side-by-side pod and container lifecycle benchmark: crid and containerd
# (Debian's 1.6, CRI plugin, runc) on one machine, in one run, alternating.
# For each of ROUNDS pods: RunPodSandbox, CreateContainer+StartContainer of
# a busybox `sleep`, then StopContainer+RemoveContainer+StopPodSandbox+
# RemovePodSandbox, timed over gRPC by test/bench/lifecycle; medians of
# each, and the memory the runtime adds per
# running pod (PSS of crid's monitor and infra processes, of containerd's
# shim), with PODS pods running at once. Pods are as the kubelet makes
# them by default: a PID namespace per container (no infra process). Not
# part of the pass/fail suite.
#
#   test/bench/lifecycle.sh [ROUNDS] [PODS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin
rounds=${1:-10}
npods=${2:-10}
[ "$(id -u)" = 0 ] || { echo "lifecycle.sh: needs root" >&2; exit 1; }
"$repo/hack/install-deps.sh" test
dpkg-query -W -f='${Status}' containerd 2>/dev/null | grep -q "install ok installed" || {
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd runc >/dev/null
}
"$repo/hack/build.sh"
crictl=${CRID_TOOLS_DIR:-$repo/_output/tools}/crictl
export CRI_CONFIG_FILE=/dev/null

work=$(mktemp -d /var/tmp/crid-bench-life.XXXXXX)
pids=()
cleanup() {
	for ep in crid containerd; do
		"$crictl" --runtime-endpoint "unix://$work/$ep.sock" rmp -fa >/dev/null 2>&1 || true
	done
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: %s\n' "$work" "$reg" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
until curl -fsS "http://$reg/v2/" >/dev/null 2>&1; do sleep 0.1; done
(cd "$repo" && for h in pause fakenginx nnp; do CGO_ENABLED=0 go build -o "$work/helpers/$h" "./test/images/$h"; done &&
	go run ./test/images/build -registry "$reg" -helpers "$work/helpers" -registries-conf "$work/registries.conf" >/dev/null)
image=registry.k8s.io/e2e-test-images/busybox:1.29-2

mkdir -p "$work/net.d"
sed "s/crid0/cridbench0/; s#10.88.0.0/16#10.77.0.0/16#; s/\"name\": \"crid\"/\"name\": \"crid-bench\"/" "$repo/deploy/cni/10-crid-bridge.conflist" >"$work/net.d/10-crid.conflist"
mkdir -p "$work/net.d-ctrd"
sed "s/crid0/ctrdbench0/; s#10.88.0.0/16#10.78.0.0/16#; s/\"name\": \"crid\"/\"name\": \"ctrd-bench\"/" "$repo/deploy/cni/10-crid-bridge.conflist" >"$work/net.d-ctrd/10-ctrd.conflist"
cat >"$work/crid.toml" <<TOML
root = "$work/crid-root"
runroot = "$work/crid-run"
listen = "$work/crid.sock"
[image]
registries_conf = "$work/registries.conf"
[network]
cni_config_dir = "$work/net.d"
[metrics]
address = ""
TOML
"$repo/_output/bin/crid" --config "$work/crid.toml" >"$work/crid.log" 2>&1 &
pids+=($!)

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
  sandbox_image = "$reg/registry.k8s.io/pause:3.9"
[plugins."io.containerd.grpc.v1.cri".cni]
  conf_dir = "$work/net.d-ctrd"
  bin_dir = "/usr/lib/cni"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$work/certs.d"
TOML
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
pids+=($!)
for ep in crid containerd; do
	for _ in $(seq 100); do "$crictl" --runtime-endpoint "unix://$work/$ep.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
done
c() { local ep=$1; shift; "$crictl" --runtime-endpoint "unix://$work/$ep.sock" --image-endpoint "unix://$work/$ep.sock" "$@"; }
c crid pull "$image" >/dev/null
c containerd pull "$reg/registry.k8s.io/e2e-test-images/busybox:1.29-2" >/dev/null
c containerd pull "$reg/registry.k8s.io/pause:3.9" >/dev/null
(cd "$repo" && go run ./test/bench/lifecycle -rounds "$rounds" -keep "$npods" -logs "$work/logs" \
	-a "crid=$work/crid.sock=$image" \
	-b "containerd=$work/containerd.sock=$reg/registry.k8s.io/e2e-test-images/busybox:1.29-2")
ratio() { echo "scale=2; $1 / $2" | bc; }

# Memory per running pod: the runtime's own processes beside each pod.
sleep 2
pss_of() { awk '/^Pss:/ {s+=$2} END {print s+0}' $(for p in "$@"; do echo /proc/$p/smaps_rollup; done) 2>/dev/null; }
crid_pids=$(pgrep -f "crid (monitor|infra)" || true)
ctrd_pids=$(pgrep -f "containerd-shim-runc-v2 -namespace k8s.io .*-address $work/containerd.sock" || true)
cp=$(pss_of $crid_pids); dp=$(pss_of $ctrd_pids)
echo "memory per running pod ($npods pods, PSS of the runtime's per-pod processes):"
echo "  crid       $((cp / npods)) kB ($(echo $crid_pids | wc -w) processes)"
echo "  containerd $((dp / npods)) kB ($(echo $ctrd_pids | wc -w) shims)"
[ "$dp" -gt 0 ] && echo "  ratio $(ratio "$cp" "$dp")"
crid_rss=$(awk '/^VmRSS:/ {print $2}' /proc/"${pids[1]}"/status)
echo "crid daemon RSS with $npods pods: ${crid_rss} kB"
