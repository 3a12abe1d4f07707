#!/usr/bin/env bash
# Runs test/cgroups on a cgroup v2 kernel: Debian's linux-image-cloud-amd64
# booted under qemu (TCG, no KVM needed) with an initramfs whose /init is the
# static test binary. Prints the tests' output and exits 0 only when the
# guest reports CRID-CGROUP-TESTS: PASS.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin
tools=${CRID_TOOLS_DIR:-$repo/_output/tools}
timeout_s=${CRID_QEMU_TIMEOUT:-600}

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The kernel: whatever linux-image-cloud-amd64 points at today, unpacked
# once into the tools dir (not installed: this host keeps its own kernel).
kdir=$tools/kernel
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
fi
vmlinuz=$(ls "$kdir/$pkg"/boot/vmlinuz-* 2>/dev/null | head -1 || true)
if [ -z "$vmlinuz" ]; then
	echo "qemu.sh: fetching $pkg"
	mkdir -p "$kdir/$pkg"
	(cd "$kdir" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null)
	dpkg-deb -x "$kdir/${pkg}"_*.deb "$kdir/$pkg"
	rm -f "$kdir/${pkg}"_*.deb
	vmlinuz=$(ls "$kdir/$pkg"/boot/vmlinuz-* | head -1)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$repo"
# Static, with cgo: the executor test starts containers, and the executor's
# namespace joining (pkg/oci/nsenter) is C run before Go starts.
CGO_ENABLED=1 go test -c -tags netgo,osusergo -ldflags '-linkmode external -extldflags -static' -o "$work/cgroups.test" ./test/cgroups
# The pod monitor, for the test of its start (TestMonitorLaunchesIntoTheCgroup).
cc -O2 -Wall -Wextra -Werror -static -o "$work/crid-podmon" cmd/crid-podmon/podmon.c cmd/crid-podmon/infra.c
go run ./test/cgroups/mkinitramfs -init "$work/cgroups.test" -bin "$work/crid-podmon" -o "$work/initramfs.cpio"

echo "qemu.sh: booting $(basename "$vmlinuz") (cgroup v2) with the cgroup tests as init"
set +e
timeout "$timeout_s" qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m 1024 \
	-nographic -no-reboot -nic none \
	-kernel "$vmlinuz" -initrd "$work/initramfs.cpio" \
	-append "console=ttyS0 rdinit=/init panic=-1 quiet cgroup_no_v1=all" </dev/null >"$work/console.log" 2>&1
status=$?
set -e
tr -d '\r' <"$work/console.log" | sed -n '/=== RUN/,$p'
if grep -q "CRID-CGROUP-TESTS: PASS" "$work/console.log"; then
	exit 0
fi
[ $status = 124 ] && echo "qemu.sh: the guest did not finish in ${timeout_s}s"
tr -d '\r' <"$work/console.log" | tail -30
echo "qemu.sh: cgroup v2 tests FAILED"
exit 1
