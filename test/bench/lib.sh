# Shared set-up of the side-by-side benchmarks, sourced by pull.sh and
# lifecycle.sh: a scratch directory, a loopback docker-registry, crid,
# containerd (Debian's 1.6, CRI plugin) and CRI-O (built by build-crio.sh,
# with Debian's conmon and runc) on scratch roots, and a cleanup that stops
# only the processes started here (by PID) and leaves no mount.
#
#   bench_init NAME              root check, tools, build; sets repo, crictl, work
#   bench_registry               starts the registry; sets reg
#   bench_crid TOML_EXTRA        starts crid with extra config lines; with
#                                BENCH_CRID_METRICS=127.0.0.1:PORT, its metrics
#                                and Go's profiles (/debug/pprof/) there
#   bench_containerd CRI_EXTRA   starts containerd with extra lines in its
#                                CRI plugin section (after restrict_oom_score_adj)
#   bench_crio CNI_DIR PAUSE     starts CRI-O with that CNI config and pause image
#   bench_wait [ENDPOINT...]     waits until they answer (crid and containerd)
#   c ENDPOINT CRICTL_ARGS...    crictl against crid, containerd or crio

bench_init() {
	local name=$1
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	export PATH=$PATH:/usr/local/go/bin
	[ "$(id -u)" = 0 ] || { echo "$name: needs root" >&2; exit 1; }
	"$repo/hack/install-deps.sh" test
	dpkg-query -W -f='${Status}' containerd 2>/dev/null | grep -q "install ok installed" || {
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd runc >/dev/null
	}
	"$repo/hack/build.sh"
	crictl=${CRID_TOOLS_DIR:-$repo/_output/tools}/crictl
	export CRI_CONFIG_FILE=/dev/null
	work=$(mktemp -d "/var/tmp/crid-bench-$name.XXXXXX")
	pids=()
	trap bench_cleanup EXIT
}

bench_cleanup() {
	# Every pod goes before its runtime stops (their state is under $work,
	# removed below: a pod left now leaks its processes, leases and
	# iptables rules). With 100 pods that takes longer than crictl's
	# default 2 s: each CNI DEL runs iptables, one at a time.
	local ep attempt ids
	for ep in ${bench_endpoints:-crid containerd}; do
		# Containers first, at once: a pod's stop would wait out each
		# runtime's grace for a `sleep` (PID 1) that ignores SIGTERM.
		ids=$("$crictl" --runtime-endpoint "unix://$work/$ep.sock" ps -q 2>/dev/null || true)
		# shellcheck disable=SC2086 # a list of IDs
		[ -z "$ids" ] || "$crictl" --timeout 300s --runtime-endpoint "unix://$work/$ep.sock" stop --timeout 0 $ids >/dev/null 2>&1 || true
		for attempt in 1 2 3; do
			"$crictl" --timeout 300s --runtime-endpoint "unix://$work/$ep.sock" rmp -fa >/dev/null 2>&1 || true
			[ -z "$("$crictl" --runtime-endpoint "unix://$work/$ep.sock" pods -q 2>/dev/null)" ] && break
		done
	done
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	# The bridges the run's CNI chains made (the plugin never removes one).
	for link in ${bench_links:-}; do ip link del "$link" 2>/dev/null || true; done
	rm -rf "$work"
}

bench_registry() {
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	reg=127.0.0.1:$port
	printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: %s\n' "$work" "$reg" >"$work/registry.yml"
	docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
	pids+=($!)
	until curl -fsS "http://$reg/v2/" >/dev/null 2>&1; do sleep 0.1; done
}

bench_crid() {
	cat >"$work/crid.toml" <<TOML
root = "$work/crid-root"
runroot = "$work/crid-run"
listen = "$work/crid.sock"
$1
[metrics]
address = "${BENCH_CRID_METRICS:-}"
${BENCH_CRID_METRICS:+[debug]
pprof = true}
[nri]
socket_path = "$work/nri.sock"
plugin_path = "$work/nri-plugins"
plugin_config_path = "$work/nri-conf.d"
TOML
	"$repo/_output/bin/crid" --config "$work/crid.toml" >"$work/crid.log" 2>&1 &
	pids+=($!)
	crid_pid=$!
}

# containerd is told that the registry speaks plain http.
bench_containerd() {
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
$1
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$work/certs.d"
TOML
	containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
	pids+=($!)
	containerd_pid=$!
}

# CRI-O as the issue's comparison runs it: cgroupfs, conmon in the pod's
# cgroup, runc, no infra container where the pod shares no PID namespace
# (its default), every path it would write on the host moved under $work,
# NRI off (on a socket of its own were it on), a policy that takes unsigned
# images. Its images are named by the loopback registry's address, as
# containerd's are, and the registries file it reads names that registry
# alone (its hidden --registries-conf; it reads neither containers'
# environment variable nor crid's file, and would look an upstream name up
# in DNS: no test may reach for any address outside).
bench_crio() {
	local cni=$1 pause=$2 bin
	bin=$("$repo/test/bench/build-crio.sh")
	mkdir -p "$work/crio-hooks" "$work/crio-ns" "$work/crio.conf.d"
	printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$work/policy.json"
	cat >"$work/crio.conf" <<TOML
[crio]
root = "$work/crio-root"
runroot = "$work/crio-run"
storage_driver = "overlay"
log_dir = "$work/crio-logs"
version_file = "$work/crio-version"
version_file_persist = "$work/crio-version-persist"
clean_shutdown_file = "$work/crio-clean.shutdown"
internal_wipe = true
[crio.api]
listen = "$work/crio.sock"
stream_port = "0"
[crio.runtime]
cgroup_manager = "cgroupfs"
default_runtime = "runc"
conmon = "/usr/bin/conmon"
pinns_path = "$bin/pinns"
namespaces_dir = "$work/crio-ns"
container_exits_dir = "$work/crio-run/exits"
container_attach_socket_dir = "$work/crio-run"
hooks_dir = ["$work/crio-hooks"]
irqbalance_config_file = ""
irqbalance_config_restore_file = ""
apparmor_profile = ""
drop_infra_ctr = true
[crio.runtime.runtimes.runc]
runtime_path = "/usr/bin/runc"
runtime_root = "$work/crio-runc"
monitor_path = "/usr/bin/conmon"
monitor_cgroup = "pod"
[crio.image]
pause_image = "$pause"
signature_policy = "$work/policy.json"
short_name_mode = "disabled"
[crio.network]
network_dir = "$cni"
plugin_dirs = ["/usr/lib/cni"]
[crio.metrics]
enable_metrics = false
[crio.nri]
enable_nri = false
nri_listen = "$work/crio-nri.sock"
TOML
	printf 'unqualified-search-registries = []\n[[registry]]\nlocation = "%s"\ninsecure = true\n' "$reg" >"$work/crio-registries.conf"
	mkdir -p "$work/crio-registries.d"
	CONTAINERS_STORAGE_CONF=/dev/null "$bin/crio" --config "$work/crio.conf" --config-dir "$work/crio.conf.d" \
		--registries-conf "$work/crio-registries.conf" --registries-conf-dir "$work/crio-registries.d" >"$work/crio.log" 2>&1 &
	pids+=($!)
	crio_pid=$!
}

bench_wait() {
	local ep eps=("$@")
	[ $# -gt 0 ] || eps=(crid containerd)
	for ep in "${eps[@]}"; do
		for _ in $(seq 100); do c "$ep" version >/dev/null 2>&1 && break; sleep 0.1; done
	done
}

c() {
	local ep=$1
	shift
	"$crictl" --runtime-endpoint "unix://$work/$ep.sock" --image-endpoint "unix://$work/$ep.sock" "$@"
}
