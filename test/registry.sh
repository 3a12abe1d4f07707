#!/usr/bin/env bash
# Starts Debian's docker-registry, which serves the test images, and
# prints its PID once it answers:
#   registry.sh ADDR DIR   (ADDR on loopback, or in a run's own network
#                           namespace; storage in DIR/registry, so pushes
#                           after the first are no-ops; log in DIR/registry.log)
# The caller stops it by that PID.
set -euo pipefail
addr=${1:?usage: registry.sh ADDR DIR}
dir=${2:?usage: registry.sh ADDR DIR}
mkdir -p "$dir"
cat >"$dir/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/registry
  delete:
    enabled: true
http:
  addr: $addr
YML
docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 50); do
	curl -fsS "http://$addr/v2/" >/dev/null 2>&1 && { echo "$pid"; exit 0; }
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.2
done
cat "$dir/registry.log" >&2
echo "registry: docker-registry on $addr did not start" >&2
kill "$pid" 2>/dev/null || true
exit 1
