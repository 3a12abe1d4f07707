package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"
)

// chain runs a CNI chain by itself through libcni, with no runtime: the
// floor every runtime's RunPodSandbox and StopPodSandbox with that chain
// sit on, timed in the same rounds.
type chain struct {
	list  *libcni.NetworkConfigList
	cni   *libcni.CNIConfig
	dir   string // where its network namespaces are pinned
	times map[string][]time.Duration
}

func newChain(conflist, binDir, dir string) (*chain, error) {
	list, err := libcni.ConfListFromFile(conflist)
	if err != nil {
		return nil, fmt.Errorf("-chain: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &chain{list: list, cni: libcni.NewCNIConfig(filepath.SplitList(binDir), nil), dir: dir, times: map[string][]time.Duration{}}, nil
}

// round is one ADD and one DEL of a new network namespace.
func (c *chain) round(ctx context.Context, name string) error {
	ns := filepath.Join(c.dir, name)
	if err := newNetNS(ns); err != nil {
		return err
	}
	defer func() {
		unix.Unmount(ns, unix.MNT_DETACH)
		os.Remove(ns)
	}()
	rt := &libcni.RuntimeConf{ContainerID: fmt.Sprintf("%064x", time.Now().UnixNano()), NetNS: ns, IfName: "eth0"}
	t0 := time.Now()
	if _, err := c.cni.AddNetworkList(ctx, c.list, rt); err != nil {
		c.cni.DelNetworkList(ctx, c.list, rt) // what the ADD made before it failed
		return fmt.Errorf("the chain alone: ADD: %w", err)
	}
	t1 := time.Now()
	if err := c.cni.DelNetworkList(ctx, c.list, rt); err != nil {
		return fmt.Errorf("the chain alone: DEL: %w", err)
	}
	c.times["ADD"] = append(c.times["ADD"], t1.Sub(t0))
	c.times["DEL"] = append(c.times["DEL"], time.Since(t1))
	return nil
}

// newNetNS makes a network namespace on a thread of its own, which is
// never given back to the Go scheduler, and pins it at path.
func newNetNS(path string) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("unshare a network namespace: %w", err)
			return
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL, 0o400)
		if err != nil {
			done <- err
			return
		}
		f.Close()
		done <- unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
	}()
	return <-done
}
