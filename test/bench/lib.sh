# Shared set-up of the side-by-side benchmarks, sourced by pull.sh and
# lifecycle.sh: a scratch directory, a loopback docker-registry, crid and
# containerd (Debian's 1.6, CRI plugin) on scratch roots, and a cleanup that
# stops only the processes started here (by PID) and leaves no mount.
#
#   bench_init NAME              root check, tools, build; sets repo, crictl, work
#   bench_registry               starts the registry; sets reg
#   bench_crid TOML_EXTRA        starts crid with extra config lines
#   bench_containerd CRI_EXTRA   starts containerd with extra lines in its
#                                CRI plugin section (after restrict_oom_score_adj)
#   bench_wait                   waits until both answer
#   c ENDPOINT CRICTL_ARGS...    crictl against crid or containerd

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
	local ep attempt
	for ep in ${bench_endpoints:-crid containerd}; do
		for attempt in 1 2 3; do
			"$crictl" --timeout 300s --runtime-endpoint "unix://$work/$ep.sock" rmp -fa >/dev/null 2>&1 || true
			[ -z "$("$crictl" --runtime-endpoint "unix://$work/$ep.sock" pods -q 2>/dev/null)" ] && break
		done
	done
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
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
address = ""
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

bench_wait() {
	local ep
	for ep in crid containerd; do
		for _ in $(seq 100); do c "$ep" version >/dev/null 2>&1 && break; sleep 0.1; done
	done
}

c() {
	local ep=$1
	shift
	"$crictl" --runtime-endpoint "unix://$work/$ep.sock" --image-endpoint "unix://$work/$ep.sock" "$@"
}
