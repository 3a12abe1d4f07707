#!/usr/bin/env bash
# Prints the config of the containerd that test/e2e/node/run.sh runs the
# node e2e suite against, beside crid: Debian's containerd 1.6 with runc,
# on a scratch root, the same CNI network as crid's, and every registry the
# suite names sent to the run's loopback registry (hosts.toml with
# override_path, the way crid's registries.conf remaps prefixes).
#   containerd-config.sh SCRATCH REGISTRY
set -euo pipefail
scratch=${1:?usage: containerd-config.sh SCRATCH REGISTRY}
registry=${2:?usage: containerd-config.sh SCRATCH REGISTRY}

for host in registry.k8s.io invalid.registry.k8s.io gcr.io docker.io; do
	mkdir -p "$scratch/containerd-certs.d/$host"
	cat >"$scratch/containerd-certs.d/$host/hosts.toml" <<TOML
server = "http://$registry/v2/$host"

[host."http://$registry/v2/$host"]
  capabilities = ["pull", "resolve"]
  override_path = true
TOML
done

cat <<TOML
version = 2
root = "$scratch/containerd-root"
state = "$scratch/containerd-state"

[grpc]
  address = "$scratch/containerd.sock"

[ttrpc]
  address = "$scratch/containerd.sock.ttrpc"

[debug]
  address = "$scratch/containerd-debug.sock"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.2"
  # Root here lacks CAP_SYS_RESOURCE: no oom_score_adj below the daemon's
  # own (0) can be set, and runc fails every sandbox (containerd gives them
  # -998) with "can't get final child's PID from pipe: EOF". Clamped, as
  # crid clamps.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
    # The RuntimeClass specs' handler, as Kubernetes' node e2e CI configures.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$scratch/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$scratch/containerd-certs.d"
TOML
