#!/usr/bin/env bash
# The side-by-side benchmark: crid, containerd (Debian's 1.6, CRI plugin,
# runc) and CRI-O (build-crio.sh's, conmon and runc from Debian, cgroupfs,
# conmon in the pod's cgroup) on one machine, in one run, interleaved, each
# on a bridge of its own with the same CNI chain (bridge + portmap,
# containerd's default), timed over gRPC by test/bench/lifecycle:
#
#   - ROUNDS rounds; in each, every runtime runs one pod with the CNI
#     network and one with the host's (the runtime's own share, no plugin),
#     each with one busybox `sleep`: every call timed alone, median and p90;
#     and the chain run alone through libcni (ADD, DEL: no runtime), the
#     floor of every runtime's RunPodSandbox and StopPodSandbox with it;
#   - memory with KEEP pods running (a comma-separated list of counts):
#     PSS of the runtime's per-pod processes (crid's monitors, containerd's
#     shims and pause processes, CRI-O's conmons), per pod, and daemon RSS;
#   - with DENSITY > 0, that many pods of three containers on every runtime:
#     RunPodSandbox's p99 at the first and the last ten pods, the kubelet's
#     relist calls with every container there, the same calls against the
#     runtime's own answers served byte for byte by a bare process of the
#     bench's (the transport's and the client's floor), each runtime's
#     CPU at rest over the same 20 s (daemon, per-pod processes) and its
#     total memory.
#
# To look into the relist: LIFECYCLE_RELIST_HOOK is a shell command run
# before each one (RUNTIME names the runtime; a profiler it starts in the
# background sees the calls) and LIFECYCLE_RELIST_TIMES=PREFIX writes
# each ListContainers' start and length to PREFIX.RUNTIME, to find the slow
# ones in the profile (test/bench/lifecycle, relistHookEnv).
#
# Pods are as the kubelet makes them by default: a PID namespace per
# container. The table goes to stdout, the JSON report to
# _output/bench/lifecycle-DATE.json. Not part of the pass/fail suite.
#
#   test/bench/lifecycle.sh [ROUNDS] [KEEP] [DENSITY] [DENSITY_NETWORK]
#
# DENSITY_NETWORK is cni (the default) or host: host-network pods show the
# runtimes' own scaling without the CNI chain's (its iptables rules grow
# with every pod).
set -euo pipefail
rounds=${1:-20}
keep=${2:-10,100}
density=${3:-0}
density_net=${4:-cni}
. "$(dirname "$0")/lib.sh"
bench_endpoints="crid containerd crio"
bench_links="bcrid0 bctrd0 bcrio0 balone0"
bench_init life
bench_registry
(cd "$repo" && for h in pause fakenginx nnp; do CGO_ENABLED=0 go build -o "$work/helpers/$h" "./test/images/$h"; done &&
	go run ./test/images/build -registry "$reg" -helpers "$work/helpers" -registries-conf "$work/registries.conf" >/dev/null)
image=registry.k8s.io/e2e-test-images/busybox:1.29-2
pause=registry.k8s.io/pause:3.9

# One chain for all: bridge and portmap, each runtime on its own bridge
# and subnet.
chain() { # dir name bridge octet
	mkdir -p "$1"
	cat >"$1/10-$2.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$2",
  "plugins": [
    {"type": "bridge", "bridge": "$3", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.$4.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$work/ipam-$2"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}
chain "$work/net.d" bench-crid bcrid0 77
chain "$work/net.d-ctrd" bench-ctrd bctrd0 78
chain "$work/net.d-crio" bench-crio bcrio0 79
chain "$work/net.d-alone" bench-alone balone0 80 # run by the bench itself, no runtime

bench_crid "[image]
registries_conf = \"$work/registries.conf\"
[network]
cni_config_dir = \"$work/net.d\""
bench_containerd "  sandbox_image = \"$reg/$pause\"
[plugins.\"io.containerd.grpc.v1.cri\".cni]
  conf_dir = \"$work/net.d-ctrd\"
  bin_dir = \"/usr/lib/cni\""
bench_crio "$work/net.d-crio" "$reg/$pause"
bench_wait crid containerd crio
c crio version >/dev/null || { echo "lifecycle.sh: CRI-O did not start:" >&2; tail "$work/crio.log" >&2; exit 1; }
c crid pull "$image" >/dev/null
c crio pull "$reg/$image" >/dev/null
c crio pull "$reg/$pause" >/dev/null
c containerd pull "$reg/$image" >/dev/null
c containerd pull "$reg/$pause" >/dev/null

mkdir -p "$repo/_output/bench"
report=$repo/_output/bench/lifecycle-$(date -u +%Y%m%dT%H%M%SZ).json
(cd "$repo" && go run ./test/bench/lifecycle -rounds "$rounds" -keep "$keep" -density "$density" -density-network "$density_net" -logs "$work/logs" -json "$report" \
	-chain "$work/net.d-alone/10-bench-alone.conflist" \
	-rt "name=crid,sock=$work/crid.sock,image=$image,pid=$crid_pid,perpod=^crid-podmon $work/" \
	-rt "name=containerd,sock=$work/containerd.sock,image=$reg/$image,pid=$containerd_pid,perpod=^[^ ]*containerd-shim-runc-v2 -namespace k8s.io .*-address $work/containerd.sock" \
	-rt "name=crio,sock=$work/crio.sock,image=$reg/$image,pid=$crio_pid,perpod=^[^ ]*conmon .*$work/")
echo "report: $report"
