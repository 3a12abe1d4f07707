#!/usr/bin/env bash
# Side-by-side pull benchmark: one multi-layer image of about 200 MiB,
# pulled and unpacked from a loopback docker-registry by crid and by
# containerd (Debian's 1.6, CRI plugin, overlayfs snapshotter), ROUNDS times
# each, alternating, in one run. Prints each time and the crid/containerd
# ratio of the medians. Not part of the pass/fail suite.
#
#   test/bench/pull.sh [ROUNDS]
set -euo pipefail
rounds=${1:-3}
. "$(dirname "$0")/lib.sh"
bench_init pull
bench_registry
image=$reg/bench/multilayer:1
(cd "$repo" && go run ./test/bench/mkimage -ref "$image" -layers 5 -size 200)
bench_crid ""
bench_containerd ""
bench_wait

pull() { # endpoint -> seconds
	local start end
	start=$(date +%s.%N)
	c "$1" pull "$image" >/dev/null
	end=$(date +%s.%N)
	c "$1" rmi "$image" >/dev/null
	echo "$end - $start" | bc
}
crid_times=() containerd_times=()
for i in $(seq "$rounds"); do
	sync
	crid_times+=("$(pull crid)")
	sync
	containerd_times+=("$(pull containerd)")
	echo "round $i: crid ${crid_times[-1]}s, containerd ${containerd_times[-1]}s"
done
# Each crid pull must really have fetched the image, not found it cached.
fetched=$(grep -o 'fetchedBytes=[0-9]*' "$work/crid.log" | cut -d= -f2)
echo "crid fetched bytes per pull: $(echo $fetched)"
for b in $fetched; do [ "$b" -gt 100000000 ] || { echo "pull.sh: a crid pull fetched only $b bytes" >&2; exit 1; }; done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
c=$(median "${crid_times[@]}")
d=$(median "${containerd_times[@]}")
echo "pull+unpack of $image (5 layers, 200 MiB): crid median ${c}s, containerd median ${d}s, ratio $(echo "scale=2; $c / $d" | bc)"
