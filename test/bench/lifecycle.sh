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
rounds=${1:-10}
npods=${2:-10}
. "$(dirname "$0")/lib.sh"
bench_init life
bench_registry
(cd "$repo" && for h in pause fakenginx nnp; do CGO_ENABLED=0 go build -o "$work/helpers/$h" "./test/images/$h"; done &&
	go run ./test/images/build -registry "$reg" -helpers "$work/helpers" -registries-conf "$work/registries.conf" >/dev/null)
image=registry.k8s.io/e2e-test-images/busybox:1.29-2

mkdir -p "$work/net.d"
sed "s/crid0/cridbench0/; s#10.88.0.0/16#10.77.0.0/16#; s/\"name\": \"crid\"/\"name\": \"crid-bench\"/" "$repo/deploy/cni/10-crid-bridge.conflist" >"$work/net.d/10-crid.conflist"
mkdir -p "$work/net.d-ctrd"
sed "s/crid0/ctrdbench0/; s#10.88.0.0/16#10.78.0.0/16#; s/\"name\": \"crid\"/\"name\": \"ctrd-bench\"/" "$repo/deploy/cni/10-crid-bridge.conflist" >"$work/net.d-ctrd/10-ctrd.conflist"
bench_crid "[image]
registries_conf = \"$work/registries.conf\"
[network]
cni_config_dir = \"$work/net.d\""
bench_containerd "  sandbox_image = \"$reg/registry.k8s.io/pause:3.9\"
[plugins.\"io.containerd.grpc.v1.cri\".cni]
  conf_dir = \"$work/net.d-ctrd\"
  bin_dir = \"/usr/lib/cni\""
bench_wait
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
crid_rss=$(awk '/^VmRSS:/ {print $2}' /proc/"$crid_pid"/status)
ctrd_rss=$(awk '/^VmRSS:/ {print $2}' /proc/"$containerd_pid"/status)
echo "daemon RSS with $npods pods running:"
echo "  crid       ${crid_rss} kB"
echo "  containerd ${ctrd_rss} kB"
echo "  ratio $(ratio "$crid_rss" "$ctrd_rss")"
