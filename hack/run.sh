#!/usr/bin/env bash
# Installs what is missing, builds crid and runs it in the foreground with
# its defaults: state in /var/lib/crid and /run/crid, the CRI socket at
# /run/crid/crid.sock, and the pod network of deploy/cni when the node has
# none. Extra arguments go to crid (for example --log-level debug).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (crid manages namespaces, mounts and cgroups)" >&2; exit 1; }

"$repo/hack/install-deps.sh" runtime
"$repo/hack/build.sh"

# A node without a pod network gets crid's default bridge; one that has a
# network (from a CNI daemonset, say) keeps it.
confdir=/etc/cni/net.d
if ! ls "$confdir"/*.conflist "$confdir"/*.conf "$confdir"/*.json >/dev/null 2>&1; then
	install -D -m 0644 "$repo/deploy/cni/10-crid-bridge.conflist" "$confdir/10-crid-bridge.conflist"
	echo "run.sh: installed the default pod network $confdir/10-crid-bridge.conflist"
fi
# crictl finds crid without flags when it has no other configuration.
[ -e /etc/crictl.yaml ] || printf 'runtime-endpoint: unix:///run/crid/crid.sock\nimage-endpoint: unix:///run/crid/crid.sock\ntimeout: 10\n' >/etc/crictl.yaml

exec "$repo/_output/bin/crid" "$@"
