#!/usr/bin/env bash
# A Kubernetes cluster on crid, built by kubeadm as an operator builds one:
# three nodes, the control plane's static pods, CoreDNS and kube-proxy all
# running on crid, then checked through kubectl. On its own (root):
#   test/e2e/cluster/run.sh            the cluster and its checks
#   CLUSTER_CONFORMANCE=1 run.sh       then the upstream e2e [Conformance]
#                                      specs against it, as a report
#   CLUSTER_KEEP=1 run.sh              leave the cluster up at the end
#                                      (kill the lab's PID to end it)
#
# kubeadm, the kubelet, kubectl, the control plane, kube-proxy, etcd and
# CoreDNS are built by test/e2e/build-k8s.sh (cached by version), and their
# images packed here (test/images/catalog, Cluster) and served, under their
# registry.k8s.io names, by a docker-registry on each node's loopback that
# crid reaches through its registries.conf remap.
#
# Every address is inside namespaces made here: the lab (a network, mount
# and UTS namespace holding a bridge and nothing else) and, on its bridge,
# one network, UTS and mount namespace per node: 10.99.0.1N, hostname nodeN,
# a default route into the bridge where nothing answers, /etc/hosts and
# /etc/resolv.conf naming only the nodes, and its own /etc/kubernetes,
# /etc/crid, /etc/cni/net.d, /etc/default/kubelet, /var/lib/kubelet,
# /var/lib/etcd, /var/lib/cni, /var/log/pods, /var/log/containers and
# /run/crid. Each node has its own crid (deploy/crid.toml's paths), kubelet
# (cgroup root /crid-cluster/nodeN) and registry. No systemd here: each
# node's kubelet is supervised as kubeadm's unit (10-kubeadm.conf) has
# systemd do it, restarted whenever it exits, with the flags of
# kubeadm-flags.env and /etc/default/kubelet.
#
# The pod network: each node's pod CIDR (the controller manager cuts them
# from deploy/kubeadm/init.yaml's podSubnet) on a CNI bridge, and a route on
# every node to every other node's CIDR through that node.
#
# Each check prints `cluster: PASS|FAIL name (seconds)`; the last line is
# `cluster: N passed, N failed`, and the exit status 0 only when none
# failed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
export PATH=$PATH:/usr/local/go/bin
[ "$(id -u)" = 0 ] || { echo "cluster: needs root, as crid does" >&2; exit 1; }

version=v1.37.2
work=${CRID_CLUSTER_WORK:-/var/tmp/crid-cluster}
tools=${CRID_TOOLS_DIR:-$repo/_output/tools}
here=$repo/test/e2e/cluster
nodes=(1 2 3)
k8s=$repo/_output/k8s/$version
net=10.99.0
cgroot=crid-cluster
# crictl, in a node's namespaces, talks to that node's crid: named here,
# not left to an /etc/crictl.yaml that a fresh machine does not have
# (crictl's own defaults are containerd's and CRI-O's sockets).
export CONTAINER_RUNTIME_ENDPOINT=unix:///run/crid/crid.sock IMAGE_SERVICE_ENDPOINT=unix:///run/crid/crid.sock

node_ip() { echo "$net.1$1"; }

# The hierarchies a node's cgroup root is made in: the unified one on a
# cgroup v2 host; each mounted one (a hybrid host's unified one too)
# otherwise.
hierarchies() {
	if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
		echo /sys/fs/cgroup/
		return 0
	fi
	local h
	for h in /sys/fs/cgroup/*/; do
		if [ -e "${h}cgroup.procs" ]; then echo "$h"; fi
	done
	return 0
}

if [ "${1:-}" != --lab ] && [ "${1:-}" != --node ]; then
	"$repo/hack/install-deps.sh" test
	"$repo/hack/build.sh"
	for b in kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy agnhost; do
		"$repo/test/e2e/build-k8s.sh" "$b" "$version" >/dev/null
	done
	[ -z "${CLUSTER_CONFORMANCE:-}" ] || "$repo/test/e2e/build-k8s.sh" e2e "$version" >/dev/null
	# The versions of etcd and CoreDNS are kubeadm's: the tags it pulls.
	images=$("$k8s/kubeadm" config images list --kubernetes-version "$version")
	etcd_tag=$(echo "$images" | sed -n 's|^registry.k8s.io/etcd:||p')
	coredns_tag=$(echo "$images" | sed -n 's|^registry.k8s.io/coredns/coredns:||p')
	etcd=$("$repo/test/e2e/build-k8s.sh" etcd "v${etcd_tag%-*}" | tail -1)
	coredns=$("$repo/test/e2e/build-k8s.sh" coredns "$coredns_tag" | tail -1)
	k8s_src=$(cd /tmp && GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	[ -d "$k8s_src/test/images/agnhost" ] || { echo "cluster: no source of k8s.io/kubernetes@$version in the module cache" >&2; exit 1; }
	mkdir -p "$work" "$repo/_output/helpers"
	cd "$repo"
	test/images/build-tools.sh
	cat >"$work/images.env" <<ENV
etcd=$etcd
etcd_tag=$etcd_tag
coredns=$coredns
coredns_tag=$coredns_tag
agnhost_source=$k8s_src/test/images/agnhost
ENV
	# A kubelet kills what it does not know under its cgroup root: none
	# may be in use.
	for h in $(hierarchies); do
		if [ -d "$h$cgroot" ] && [ -n "$(find "$h$cgroot" -name cgroup.procs -exec cat {} + 2>/dev/null || true)" ]; then
			echo "cluster: $h$cgroot holds processes: another cluster test runs here" >&2
			exit 1
		fi
	done
	made=()
	for d in /etc/kubernetes /etc/crid /etc/cni/net.d /var/lib/kubelet /var/lib/etcd /var/lib/cni /var/log/pods /var/log/containers /run/crid; do
		[ -d "$d" ] || { mkdir -p "$d" && made+=("$d"); }
	done
	[ -e /etc/default/kubelet ] || { mkdir -p /etc/default && touch /etc/default/kubelet && made+=(/etc/default/kubelet); }
	set +e
	unshare --mount --net --uts --propagation private -- "$0" --lab
	status=$?
	set -e
	for d in "${made[@]}"; do rm -d "$d" 2>/dev/null || rm -f "$d" 2>/dev/null || true; done
	left=0
	for h in $(hierarchies); do
		[ -d "$h$cgroot" ] || continue
		find "$h$cgroot" -depth -type d -exec rmdir {} + 2>/dev/null || true
		if [ -d "$h$cgroot" ]; then left=$((left + 1)); fi
	done
	if [ "$left" != 0 ]; then
		echo "cluster: FAIL $left cgroup hierarchies still hold /$cgroot: a process is left in it" >&2
		status=1
	fi
	exit $status
fi

# --- a node: its namespaces hold this process; the lab runs the rest ---
if [ "$1" = --node ]; then
	n=$2
	nd=$work/node$n
	ip=$(node_ip "$n")
	touch "$nd/holder"
	for _ in $(seq 100); do ip link show eth0 >/dev/null 2>&1 && break; sleep 0.1; done
	ip link set lo up
	ip addr add "$ip/24" dev eth0
	ip link set eth0 up
	# Everything that is not a node goes into the bridge, and no further.
	ip route add default dev eth0
	# What kubeadm's preflight checks, per network namespace.
	for k in ipv4/ip_forward bridge/bridge-nf-call-iptables bridge/bridge-nf-call-ip6tables; do
		echo 1 >"/proc/sys/net/$k"
	done
	hostname "node$n"
	for m in etc-kubernetes:/etc/kubernetes etc-crid:/etc/crid net.d:/etc/cni/net.d var-lib-kubelet:/var/lib/kubelet \
		var-lib-etcd:/var/lib/etcd var-lib-cni:/var/lib/cni var-log-pods:/var/log/pods var-log-containers:/var/log/containers \
		run-crid:/run/crid hosts:/etc/hosts resolv.conf:/etc/resolv.conf default-kubelet:/etc/default/kubelet; do
		mount --bind "$nd/${m%%:*}" "${m#*:}"
	done
	if [ -e /usr/bin/systemd-run ]; then mount --bind /dev/null /usr/bin/systemd-run; fi
	cd "$repo"
	regpid=$(test/registry.sh 127.0.0.1:5000 "$nd/registry-conf")
	_output/bin/crid >"$nd/crid.log" 2>&1 &
	cridpid=$!
	echo "$cridpid" >"$nd/crid.pid"
	for _ in $(seq 100); do "$tools/crictl" version >/dev/null 2>&1 && break; sleep 0.1; done
	# The kubelet, as kubeadm's systemd drop-in runs it: Restart=always,
	# its flags from kubeadm-flags.env and /etc/default/kubelet, nothing
	# until kubeadm has written its configuration.
	(
		set +e
		trap '[ -z "$kpid" ] || { kill -TERM $kpid; wait $kpid; }; exit 0' TERM
		kpid=
		while :; do
			if [ -f /var/lib/kubelet/config.yaml ]; then
				KUBELET_KUBEADM_ARGS= KUBELET_EXTRA_ARGS=
				[ -f /var/lib/kubelet/kubeadm-flags.env ] && . /var/lib/kubelet/kubeadm-flags.env
				. /etc/default/kubelet
				# shellcheck disable=SC2086
				"$k8s/kubelet" --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
					--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml \
					$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS >>"$nd/kubelet.log" 2>&1 &
				kpid=$!
				wait $kpid || true
				echo "--- kubelet exited; restarting" >>"$nd/kubelet.log"
			fi
			sleep 1
		done
	) &
	superpid=$!
	echo "$superpid" >"$nd/supervisor.pid"
	stop() {
		set +e
		kill -TERM "$superpid" 2>/dev/null
		wait "$superpid" 2>/dev/null
		# Every pod goes before crid stops: nothing outlives the node.
		"$tools/crictl" rmp -fa >/dev/null 2>&1
		crid=$(cat "$nd/crid.pid")
		kill -TERM "$crid" "$regpid" 2>/dev/null
		wait 2>/dev/null
		# A crid restarted by the checks is not this shell's child.
		for _ in $(seq 300); do kill -0 "$crid" 2>/dev/null || exit 0; sleep 0.1; done
		echo "cluster: node$n's crid ($crid) did not stop" >&2
		exit 1
	}
	trap stop TERM
	touch "$nd/up"
	while :; do sleep 1 & wait $!; done
fi

# --- the lab ---
cd "$repo"
. "$work/images.env"
registry=127.0.0.1:5000
ip link set lo up
ip link add br0 type bridge
ip link set br0 up
hostname crid-cluster-lab

declare -A holder
pass=0 fail=0
result() { # result VERDICT NAME START [DETAIL]
	local took=$(($(date +%s) - $3))
	echo "cluster: $1 $2 (${took}s)${4:+: $4}"
	if [ "$1" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
}
# A command in node N's namespaces, with the Kubernetes binaries on PATH
# (kubeadm runs `kubelet --version`).
innode() { local n=$1; shift; nsenter -t "${holder[$n]}" -n -u -m -- env PATH="$k8s:$PATH" "$@"; }
kubectl() { innode 1 "$k8s/kubectl" --kubeconfig /etc/kubernetes/admin.conf "$@"; }
# wait_for TIMEOUT CMD...: until CMD succeeds, or fail after TIMEOUT seconds.
wait_for() {
	local until=$(($(date +%s) + $1)); shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$until" ] || return 1
		sleep 2
	done
}

cleanup() {
	set +e
	if [ -n "${CLUSTER_KEEP:-}" ]; then
		echo "cluster: kept up; SIGTERM to the lab, PID $BASHPID, ends it (nsenter -t ${holder[1]} -a enters node1)"
		trap 'CLUSTER_KEEP=' TERM
		while [ -n "$CLUSTER_KEEP" ]; do sleep 1 & wait $! || true; done
	fi
	for n in "${nodes[@]}"; do [ -n "${holder[$n]:-}" ] && kill -TERM "${holder[$n]}"; done
	# A node stops cleanly only when its crid, the last restarted one
	# too, has exited.
	local bad=
	for n in "${nodes[@]}"; do
		[ -z "${holder[$n]:-}" ] || wait "${holder[$n]}" || bad+=" node$n"
	done
	[ -z "${regpid:-}" ] || kill "$regpid" 2>/dev/null
	if [ -n "$bad" ]; then
		echo "cluster: FAIL these nodes did not stop cleanly:$bad"
		exit 1
	fi
}
trap cleanup EXIT

# A previous run's pods are removed by the crid that made them, from its
# records (its containers outlive it by design).
for n in "${nodes[@]}"; do
	nd=$work/node$n
	if [ -f "$nd/etc-crid/crid.toml" ] && [ -d "$nd/crid-root" ]; then
		_output/bin/crid --config "$nd/etc-crid/crid.toml" --listen "$work/cleanup.sock" >"$work/cleanup.log" 2>&1 &
		old=$!
		for _ in $(seq 100); do "$tools/crictl" -r "unix://$work/cleanup.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
		"$tools/crictl" -r "unix://$work/cleanup.sock" rmp -fa >/dev/null 2>&1 ||
			echo "cluster: node$n's previous crid did not remove its pods (see $work/cleanup.log)" >&2
		kill -TERM "$old" 2>/dev/null
		wait "$old" || true
	fi
	rm -rf "$nd" || { echo "cluster: cannot remove the previous run's $nd" >&2; exit 1; }
done

# The images, pushed once into the registry's storage (later runs find them
# current), which each node's registry then serves.
regpid=$(test/registry.sh "$registry" "$work")
_output/helpers/build-images -set cluster -registry "$registry" -busybox /bin/busybox \
	-helpers _output/helpers -agnhost "$k8s/agnhost" -agnhost-source "$agnhost_source" \
	-kube-bin "$k8s" -kube-version "$version" -etcd "$etcd" -etcd-tag "$etcd_tag" \
	-coredns "$coredns" -coredns-tag "$coredns_tag" -registries-conf "$work/registries.conf"
kill "$regpid"
wait "$regpid" 2>/dev/null || true
regpid=

hosts="127.0.0.1 localhost"$'\n'
for n in "${nodes[@]}"; do hosts+="$(node_ip "$n") node$n"$'\n'; done
for n in "${nodes[@]}"; do
	nd=$work/node$n
	mkdir -p "$nd"/{etc-kubernetes,etc-crid,net.d,var-lib-kubelet,var-lib-etcd,var-lib-cni,var-log-pods,var-log-containers,run-crid,registry-conf}
	ln -s "$work/registry" "$nd/registry-conf/registry"
	printf '%s' "$hosts" >"$nd/hosts"
	printf 'nameserver %s\n' "$(node_ip "$n")" >"$nd/resolv.conf"
	# The node's own kubelet flags, where an operator puts them.
	printf 'KUBELET_EXTRA_ARGS="--node-ip=%s --cgroup-root=/%s/node%s"\n' "$(node_ip "$n")" "$cgroot" "$n" >"$nd/default-kubelet"
	# deploy/crid.toml's paths, but the state under the node's dir.
	cat >"$nd/etc-crid/crid.toml" <<TOML
root = "$nd/crid-root"
runroot = "$nd/crid-run"
listen = "/run/crid/crid.sock"
[image]
registries_conf = "$work/registries.conf"
[nri]
socket_path = "$nd/nri.sock"
plugin_path = "$nd/nri-plugins"
plugin_config_path = "$nd/nri-conf.d"
TOML
	for h in $(hierarchies); do
		mkdir -p "$h$cgroot/node$n"
	done
	unshare --net --uts --mount --propagation private -- "$0" --node "$n" &
	holder[$n]=$!
	for _ in $(seq 100); do [ -e "$nd/holder" ] && break; sleep 0.1; done
	ip link add "n$n" type veth peer name eth0 netns "${holder[$n]}"
	ip link set "n$n" master br0 up
done
for n in "${nodes[@]}"; do
	wait_for 60 test -e "$work/node$n/up" || { echo "cluster: node$n did not come up" >&2; exit 1; }
done

# kubeadm init on node1, with deploy/kubeadm/init.yaml and what a node in a
# network namespace needs besides: kube-proxy must not set the conntrack
# table's size, which only the host's namespace may (as kind does).
cat deploy/kubeadm/init.yaml - >"$work/init.yaml" <<YAML
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
# Preflight errors let through, each for a reason of this machine:
# SystemVerification (cgroup v1, and no kernel config to read).
preflight=SystemVerification
start=$(date +%s)
if innode 1 "$k8s/kubeadm" init --config "$work/init.yaml" --ignore-preflight-errors="$preflight" >"$work/kubeadm-init.log" 2>&1; then
	result PASS "kubeadm init on node1" "$start"
else
	result FAIL "kubeadm init on node1" "$start" "$(tail -5 "$work/kubeadm-init.log")"
	exit 1
fi

join=$(kubectl -n kube-system get cm >/dev/null && innode 1 "$k8s/kubeadm" token create --print-join-command)
token=$(echo "$join" | sed -n 's/.*--token \([^ ]*\).*/\1/p')
hash=$(echo "$join" | sed -n 's/.*--discovery-token-ca-cert-hash sha256:\([^ ]*\).*/\1/p')
sed "s/CONTROL_PLANE_ADDRESS/$(node_ip 1)/; s/TOKEN/$token/; s/CA_CERT_HASH/$hash/" deploy/kubeadm/join.yaml >"$work/join.yaml"
for n in "${nodes[@]:1}"; do
	start=$(date +%s)
	if innode "$n" "$k8s/kubeadm" join --config "$work/join.yaml" --ignore-preflight-errors="$preflight" >"$work/kubeadm-join-$n.log" 2>&1; then
		result PASS "kubeadm join of node$n" "$start"
	else
		result FAIL "kubeadm join of node$n" "$start" "$(tail -5 "$work/kubeadm-join-$n.log")"
		exit 1
	fi
done

# The pod network: once the controller manager has given each node its
# CIDR, a bridge over it on the node, and routes between the nodes.
start=$(date +%s)
declare -A cidr
for n in "${nodes[@]}"; do
	for _ in $(seq 60); do
		cidr[$n]=$(kubectl get node "node$n" -o jsonpath='{.spec.podCIDR}' 2>/dev/null || true)
		[ -n "${cidr[$n]}" ] && break
		sleep 2
	done
	[ -n "${cidr[$n]}" ] || { result FAIL "pod CIDR of node$n" "$start"; exit 1; }
done
for n in "${nodes[@]}"; do
	sed "s|10.88.0.0/16|${cidr[$n]}|; s|\"ipMasq\": true|\"ipMasq\": false|" deploy/cni/10-crid-bridge.conflist >"$work/node$n/net.d/10-crid-bridge.conflist"
	for m in "${nodes[@]}"; do
		[ "$m" = "$n" ] || innode "$n" ip route add "${cidr[$m]}" via "$(node_ip "$m")"
	done
done
result PASS "pod network: $(for n in "${nodes[@]}"; do printf 'node%s %s ' "$n" "${cidr[$n]}"; done)" "$start"

nodes_ready() {
	[ "$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" = ${#nodes[@]} ]
}
start=$(date +%s)
if wait_for 300 nodes_ready; then
	result PASS "all ${#nodes[@]} nodes Ready" "$start"
else
	result FAIL "all ${#nodes[@]} nodes Ready" "$start" "$(kubectl get nodes 2>&1)"
fi

. "$here/checks.sh"

echo "cluster: $pass passed, $fail failed"
[ "$fail" = 0 ]
