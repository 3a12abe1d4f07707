#!/usr/bin/env bash
# The node e2e suite of Kubernetes (k8s.io/kubernetes/test/e2e_node) on crid:
# the kubelet's own conformance tests, with a real kubelet, API server and
# etcd, offline. On its own: test/e2e/node/run.sh
#
# The suite, its kubelet and agnhost are built by test/e2e/build-k8s.sh at
# the version of the kubelet e2e (cached by version). The images the specs
# pull are built here (test/images/catalog, NodeE2E) and served from a
# docker-registry that crid reaches through a registries.conf remap, under
# the names the suite asks for.
#
# Everything runs in namespaces of its own, made here: a network namespace
# whose only interfaces are loopback and a veth pair, one end holding the
# node IP, 192.0.2.1 (TEST-NET-1), the other nothing: the default route
# through it leads nowhere), a UTS namespace (hostname
# crid-node, in the /etc/hosts of the run), and a mount namespace where
# /etc/hosts and /etc/resolv.conf name only that address, and
# /var/lib/kubelet, /var/log/pods, /var/log/containers, /var/lib/cni and
# /var/run/kubernetes are scratch directories. Nothing the suite, the
# kubelet, crid or a pod sends can leave: no DNS lookup either (they go to
# 192.0.2.1:53, where nothing listens). systemd-run is masked in that mount
# namespace: systemd is not PID 1 here, and the suite would start its
# kubelet through it.
#
# The last line is `node-e2e: N passed, N failed, N skipped`; the exit
# status is 0 only when the failures are exactly those of
# expected-failures.txt and every skip has a reason in skips.txt that holds.
#
#   run.sh -update                rewrite expected-failures.txt from this run
#   NODE_E2E_FOCUS=REGEX run.sh   which specs (default: NodeConformance)
#   NODE_E2E_SKIP=REGEX run.sh    which not (default: Flaky, Slow, Serial)
#   NODE_E2E_PROCS=N run.sh       ginkgo processes (default 8)
#   NODE_E2E_RUNTIME=containerd run.sh   the same run against containerd
#                      (Debian's 1.6.20, installed if missing), as a
#                      report beside crid's: nothing is compared
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
export PATH=$PATH:/usr/local/go/bin
[ "$(id -u)" = 0 ] || { echo "node-e2e: needs root, as crid does" >&2; exit 1; }

version=v1.37.2
work=${CRID_NODE_E2E_WORK:-/var/tmp/crid-node-e2e}
tools=${CRID_TOOLS_DIR:-$repo/_output/tools}
here=$repo/test/e2e/node
runtime=${NODE_E2E_RUNTIME:-crid}
node_ip=192.0.2.1
node_name=crid-node
# The kubelet's cgroup root is the suite's own, /: its cgroup manager specs
# look for the QoS cgroups at /kubepods. A running kubelet kills what it
# does not know under its root, so no other kubelet may use /kubepods
# meanwhile (the run checks), and no other test of crid runs beside it.
cgroup_root=/

if [ "${1:-}" != --inside ]; then
	update=
	[ "${1:-}" = -update ] && update=-update
	"$repo/hack/install-deps.sh" test
	"$repo/hack/build.sh"
	bin=$(dirname "$("$repo/test/e2e/build-k8s.sh" e2e_node "$version" | tail -1)")
	"$repo/test/e2e/build-k8s.sh" agnhost "$version" >/dev/null
	# agnhost's own directory in the release, for the files its image has
	# (from the module cache; through the proxy if the binaries came from
	# the build cache and the sources never were fetched here).
	k8s_src=$(cd /tmp && GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	[ -d "$k8s_src/test/images/agnhost" ] || { echo "node-e2e: no source of k8s.io/kubernetes@$version in the module cache" >&2; exit 1; }
	agnhost_source=$k8s_src/test/images/agnhost
	mkdir -p "$work" "$repo/_output/helpers"
	cd "$repo"
	test/images/build-tools.sh
	if [ "$runtime" = containerd ] && ! command -v containerd >/dev/null; then
		echo "node-e2e: installing Debian's containerd, for the side-by-side report"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd >/dev/null
	fi
	# The directories the suite and the kubelet hard-code get scratch ones
	# mounted over them in the run's mount namespace; the mount points must
	# exist. Those made here go again afterwards.
	for h in /sys/fs/cgroup/*/; do
		if [ -d "${h}kubepods" ] && [ -n "$(find "${h}kubepods" -name cgroup.procs -exec cat {} + 2>/dev/null)" ]; then
			echo "node-e2e: ${h}kubepods holds processes: another kubelet runs here, and this suite's kubelet would kill its pods" >&2
			exit 1
		fi
	done
	made=()
	for d in /var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /var/run/kubernetes; do
		[ -d "$d" ] || { mkdir -p "$d" && made+=("$d"); }
	done
	set +e
	unshare --mount --net --uts --propagation private -- "$0" --inside "$bin" "$agnhost_source" "$update"
	status=$?
	set -e
	for d in "${made[@]}"; do rmdir "$d" 2>/dev/null || true; done
	exit $status
fi

# --- inside the run's namespaces ---
bin=$2
agnhost_source=$3
update=${4:-}
scratch=$work/run
registry=127.0.0.1:5000
report_dir=$work/report
cd "$repo"

pids=()
cleanup() {
	set +e
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT

# The network: loopback, and the node's address on one end of a veth pair
# whose other end, in this namespace too, has no address: what is sent to
# any address but the node's own asks ARP, which nothing answers. (A dummy
# device would do, but this kernel has no dummy driver.)
ip link set lo up
ip link add node0 type veth peer name node0-void
ip addr add "$node_ip/24" dev node0
ip link set node0 up
ip link set node0-void up
ip route add default dev node0
hostname "$node_name"

# A previous run's pods are removed by the crid that made them, from its
# records (its containers outlive it by design, and the namespaces of that
# run are gone): crid on the old state, every pod removed, crid stopped.
if [ -f "$scratch/crid.toml" ]; then
	echo "node-e2e: removing what the previous run left"
	_output/bin/crid --config "$scratch/crid.toml" >"$work/cleanup.log" 2>&1 &
	old=$!
	for _ in $(seq 100); do "$tools/crictl" --runtime-endpoint "unix://$scratch/crid.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
	"$tools/crictl" --runtime-endpoint "unix://$scratch/crid.sock" rmp -fa >/dev/null 2>&1 ||
		echo "node-e2e: the previous run's crid did not remove its pods (see $work/cleanup.log)" >&2
	kill -TERM "$old" 2>/dev/null || true
	wait "$old" || true
fi
rm -rf "$scratch" "$report_dir"
mkdir -p "$scratch"/{etc,net.d,suite} "$report_dir"
for d in var-lib-kubelet var-log-pods var-log-containers var-lib-cni var-run-kubernetes; do mkdir -p "$scratch/$d"; done
printf '127.0.0.1 localhost\n::1 localhost\n%s %s\n' "$node_ip" "$node_name" >"$scratch/etc/hosts"
printf 'nameserver %s\n' "$node_ip" >"$scratch/etc/resolv.conf"
mount --bind "$scratch/etc/hosts" /etc/hosts
mount --bind "$scratch/etc/resolv.conf" /etc/resolv.conf
mount --bind "$scratch/var-lib-kubelet" /var/lib/kubelet
mount --bind "$scratch/var-log-pods" /var/log/pods
mount --bind "$scratch/var-log-containers" /var/log/containers
mount --bind "$scratch/var-lib-cni" /var/lib/cni
mount --bind "$scratch/var-run-kubernetes" /var/run/kubernetes
if [ -e /usr/bin/systemd-run ]; then mount --bind /dev/null /usr/bin/systemd-run; fi

# The registry, on the run's own loopback; its storage outlives the run,
# so pushes after the first are no-ops.
pids+=("$(test/registry.sh "$registry" "$work")")
# The hosts of the two images meant not to pull (an invalid registry, and
# a private one needing upstream's credentials) go to the registry too,
# which does not have them.
_output/helpers/build-images -set node-e2e -registry "$registry" -busybox /bin/busybox \
	-helpers _output/helpers -agnhost "$repo/_output/k8s/$version/agnhost" -agnhost-source "$agnhost_source" \
	-registries-conf "$scratch/registries.conf" -remap-hosts invalid.registry.k8s.io,gcr.io

# ginkgo runs a suite binary in the directory it is in, where the suite
# writes its kubeconfig, kubelet config and static pods: links to the
# binaries in a directory of the run. (The suite looks for the kubelet
# beside its own argv[0].)
ln -s "$bin/e2e_node.test" "$scratch/suite/e2e_node.test"
ln -s "$bin/kubelet" "$scratch/suite/kubelet"

cp deploy/cni/10-crid-bridge.conflist "$scratch/net.d/"
case $runtime in
crid)
	endpoint=unix://$scratch/crid.sock
	cat >"$scratch/crid.toml" <<TOML
root = "$scratch/root"
runroot = "$scratch/runroot"
listen = "$scratch/crid.sock"
[runtime]
# The RuntimeClass specs' handler, served as crid's own (as containerd's
# and CRI-O's node e2e setups map it to runc).
handlers = ["test-handler"]
[image]
registries_conf = "$scratch/registries.conf"
[network]
cni_config_dir = "$scratch/net.d"
[nri]
socket_path = "$scratch/nri.sock"
plugin_path = "$scratch/nri-plugins"
plugin_config_path = "$scratch/nri-conf.d"
TOML
	_output/bin/crid --config "$scratch/crid.toml" >"$report_dir/crid.log" 2>&1 &
	;;
containerd)
	endpoint=unix://$scratch/containerd.sock
	bash "$here/containerd-config.sh" "$scratch" "$registry" >"$scratch/containerd.toml"
	containerd --config "$scratch/containerd.toml" >"$report_dir/containerd.log" 2>&1 &
	;;
*) echo "node-e2e: NODE_E2E_RUNTIME=$runtime: want crid or containerd" >&2; exit 2 ;;
esac
runtime_pid=$!
pids=("$runtime_pid" "${pids[@]}")
echo "$runtime_pid" >"$scratch/runtime.pid"
for _ in $(seq 100); do
	"$tools/crictl" --runtime-endpoint "$endpoint" version >/dev/null 2>&1 && break
	kill -0 "$runtime_pid" 2>/dev/null || { tail -20 "$report_dir/$runtime.log"; echo "node-e2e: $runtime exited at start" >&2; exit 1; }
	sleep 0.1
done

# The base kubelet configuration: upstream's (test/e2e_node/jenkins/
# default-kubelet-config.yaml), with what this host needs.
cat >"$scratch/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: $cgroup_root
podCIDR: "10.100.0.0/24"
volumeStatsAggPeriod: 10s
fileCheckFrequency: 10s
evictionPressureTransitionPeriod: 30s
evictionHard:
  memory.available: 250Mi
  nodefs.available: 10%
  nodefs.inodesFree: 5%
evictionMinimumReclaim:
  nodefs.available: 5%
  nodefs.inodesFree: 5%
serializeImagePulls: false
# This host is cgroup v1, which a v1.35+ kubelet refuses unless told.
failCgroupV1: false
failSwapOn: false
resolvConf: $scratch/etc/resolv.conf
YAML
# cAdvisor finds the containers of containerd, CRI-O and Docker by itself;
# any other runtime's come through the CRI (ListPodSandboxMetrics, the
# stats calls) when this gate is on: /metrics/cadvisor and the summary
# API are served from crid then. containerd is run as upstream runs it.
if [ "$runtime" = crid ]; then
	printf 'featureGates:\n  PodAndContainerStatsFromCRI: true\n' >>"$scratch/kubelet.yaml"
fi

# The suite runs the kubelet itself. Without systemd it would move every
# process of the host's root cgroup into /system (--system-cgroups), and
# itself and the runtime into /kubelet and /docker-daemon: not here.
kubelet_flags="--node-ip=$node_ip --system-cgroups= --kubelet-cgroups= --runtime-cgroups="
# (Quoted apart: in ${VAR:-word} the shell would drop the backslashes.)
default_focus='\[NodeConformance\]'
default_skip='\[Flaky\]|\[Slow\]|\[Serial\]'
focus=${NODE_E2E_FOCUS:-$default_focus}
skip=${NODE_E2E_SKIP:-$default_skip}
# The specs mostly wait (on pods, probes, grace periods): 8 processes keep
# this 2-core machine busy without starving the kubelet.
procs=${NODE_E2E_PROCS:-8}
report=$report_dir/report.json
echo "node-e2e: the node e2e suite $version on $runtime, $procs processes, focus $focus, skip $skip (logs: $report_dir)"
set +e
(PATH=$tools:$PATH ginkgo --procs="$procs" --no-color --timeout=60m \
	--focus="$focus" --skip="$skip" --json-report=report.json --output-dir="$report_dir" \
	"$scratch/suite/e2e_node.test" -- \
	--container-runtime-endpoint="$endpoint" --image-service-endpoint="$endpoint" \
	--container-runtime-process-name="$runtime" --container-runtime-pid-file="$scratch/runtime.pid" \
	--prepull-images=false --kubelet-config-file="$scratch/kubelet.yaml" \
	--kubelet-flags="$kubelet_flags" --node-name="$node_name" \
	--report-dir="$report_dir") >"$report_dir/suite.log" 2>&1
set -e
grep -E '^(Ran |FAIL!|SUCCESS!|Ginkgo ran)' "$report_dir/suite.log" || tail -30 "$report_dir/suite.log"

# Every pod is removed before the runtime stops; then the cgroups the
# kubelet made (its QoS tree under /kubepods), deepest first, once empty.
"$tools/crictl" --runtime-endpoint "$endpoint" rmp -fa >/dev/null 2>&1 || true
cleanup
pids=()
for h in /sys/fs/cgroup/*/; do
	[ -d "${h}kubepods" ] && find "${h}kubepods" -depth -type d -exec rmdir {} + 2>/dev/null
done
left=$({ find /sys/fs/cgroup/*/kubepods -maxdepth 0 -type d 2>/dev/null || true; } | wc -l)
[ "$left" = 0 ] || echo "node-e2e: $left hierarchies still hold /kubepods: a process is left in it" >&2

status=0
if [ "$runtime" = crid ]; then
	go run ./test/report -suite node-e2e -script test/e2e/node/run.sh -json "$report" \
		-expected "$here/expected-failures.txt" -skips "$here/skips.txt" -registry "$registry" $update || status=1
else
	go run ./test/report -suite "node-e2e-$runtime" -script "NODE_E2E_RUNTIME=$runtime test/e2e/node/run.sh" -json "$report" \
		-expected "$work/expected-failures-$runtime.txt" -update >/dev/null
	echo "node-e2e: $runtime's failures, for the report: $work/expected-failures-$runtime.txt"
	go run ./test/report -suite "node-e2e-$runtime" -json "$report" -expected "$work/expected-failures-$runtime.txt" | tail -1
fi
exit $status
