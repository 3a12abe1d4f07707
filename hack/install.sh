#!/usr/bin/env bash
# Installs crid as a node's service, or removes it:
#   hack/install.sh [--root DIR] [--prefix /usr/local]       install/upgrade
#   hack/install.sh [--root DIR] --uninstall [--purge]        remove
# Installing puts crid, crid-monitor and crid-podmon in PREFIX/bin, the systemd unit in
# /etc/systemd/system, and, only where there is none yet, the config
# (/etc/crid/crid.toml), the default pod network (/etc/cni/net.d) and
# /etc/crictl.yaml: an operator's own files are never overwritten. Run
# again, it replaces the binaries and the unit and changes nothing else, so
# it is also the upgrade (docs/operating.md). With --root every path is
# under DIR (a node image being built, or a test); systemd is told only when
# it runs this machine and DIR is /.
#
# Uninstalling stops crid and removes the binaries and the unit; running
# containers keep running (crid's monitors hold them) until the kubelet or
# the operator removes them. --purge also removes the files install made
# (each only if unchanged) and crid's state, refusing while anything is
# still mounted under it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=/ prefix=/usr/local uninstall= purge=
while [ $# -gt 0 ]; do
	case "$1" in
	--root) root=${2:?--root needs a directory}; shift ;;
	--prefix) prefix=${2:?--prefix needs a directory}; shift ;;
	--uninstall) uninstall=1 ;;
	--purge) purge=1 ;;
	*) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ -z "$purge" ] || [ -n "$uninstall" ] || { echo "install.sh: --purge goes with --uninstall" >&2; exit 2; }
root=${root%/}
bindir=$root$prefix/bin
unit=$root/etc/systemd/system/crid.service
systemd=
if [ -z "$root" ] && [ -d /run/systemd/system ]; then systemd=1; fi

# Files install adds only where absent, with their source.
defaults=(
	"/etc/crid/crid.toml=deploy/crid.toml"
	"/etc/cni/net.d/10-crid-bridge.conflist=deploy/cni/10-crid-bridge.conflist"
	"/etc/crictl.yaml=deploy/crictl.yaml"
)

# put copies src to dst through a temporary name and a rename, so a running
# crid's binary is replaced, never written over (which ETXTBSY refuses).
put() {
	local src=$1 dst=$2 mode=$3
	mkdir -p "$(dirname "$dst")"
	install -m "$mode" "$src" "$dst.new"
	mv -f "$dst.new" "$dst"
}

if [ -n "$uninstall" ]; then
	if [ -n "$systemd" ]; then
		systemctl disable --now crid.service 2>/dev/null || true
	fi
	rm -f "$bindir/crid" "$bindir/crid-monitor" "$bindir/crid-podmon" "$unit"
	[ -z "$systemd" ] || systemctl daemon-reload
	echo "install.sh: removed crid from $bindir and $unit"
	if [ -n "$purge" ]; then
		for d in "${defaults[@]}"; do
			dst=$root${d%%=*} src=$repo/${d#*=}
			if [ -f "$dst" ] && cmp -s "$dst" "$src"; then
				rm -f "$dst"
			elif [ -e "$dst" ]; then
				echo "install.sh: kept $dst (changed since install)"
			fi
		done
		if [ -z "$root" ]; then
			state=(/var/lib/crid /run/crid)
		else
			state=("$root/var/lib/crid" "$root/run/crid")
		fi
		for d in "${state[@]}"; do
			[ -e "$d" ] || continue
			if awk -v d="$d" '$5 == d || index($5, d "/") == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
				echo "install.sh: $d still has mounts (running pods?): remove the pods first (crictl rmp -fa), then purge again" >&2
				exit 1
			fi
			rm -rf "$d"
		done
		echo "install.sh: purged crid's configuration and state"
	fi
	exit 0
fi

"$repo/hack/build.sh"
put "$repo/_output/bin/crid" "$bindir/crid" 0755
put "$repo/_output/bin/crid-monitor" "$bindir/crid-monitor" 0755
put "$repo/_output/bin/crid-podmon" "$bindir/crid-podmon" 0755
mkdir -p "$(dirname "$unit")"
sed "s|^ExecStart=/usr/local/bin/crid |ExecStart=$prefix/bin/crid |" "$repo/deploy/systemd/crid.service" >"$unit.tmp"
put "$unit.tmp" "$unit" 0644
rm -f "$unit.tmp"
for d in "${defaults[@]}"; do
	dst=$root${d%%=*} src=$repo/${d#*=}
	# A node with a pod network of its own (a CNI daemonset's) keeps it.
	if [ "${dst#"$root"/etc/cni/net.d/}" != "$dst" ] && ls "$(dirname "$dst")"/*.conf* "$(dirname "$dst")"/*.json >/dev/null 2>&1; then
		continue
	fi
	[ -e "$dst" ] || put "$src" "$dst" 0644
done
mkdir -p "$root/var/lib/crid" "$root/etc/containers"
echo "install.sh: installed crid $("$bindir/crid" version 2>/dev/null | head -1) in $bindir, unit $unit"
if [ -n "$systemd" ]; then
	systemctl daemon-reload
	systemctl enable crid.service
	# restart, not start: an upgrade's new binary takes over; KillMode=process
	# leaves the pods' monitors running.
	systemctl restart crid.service
fi
