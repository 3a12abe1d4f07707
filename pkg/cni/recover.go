package cni

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/crid-dev/crid/pkg/netns"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// recoveredResult rebuilds, for a DEL that has no cached result, what
// the chain's ADD gave the pod: libcni caches a chain's result only once
// every plugin is done, so a crash in the middle of an ADD leaves plugins
// that made their part (the firewall plugin's per-address rules) and
// nothing to tell them which addresses at DEL. The pod's interface holds
// them, read in its network namespace while it is still pinned; else
// host-local, the usual IPAM, keeps a lease file per address naming the
// pod. Nil when neither knows an address.
func recoveredResult(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) *current.Result {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if rt.NetNS != "" {
		if ips, mac, err := interfaceAddrs(rt.NetNS, rt.IfName); err == nil && len(ips) > 0 {
			res.Interfaces = []*current.Interface{{Name: rt.IfName, Mac: mac, Sandbox: rt.NetNS}}
			zero := 0
			for _, ip := range ips {
				res.IPs = append(res.IPs, &current.IPConfig{Address: *ip, Interface: &zero})
			}
			return res
		}
	}
	for _, ip := range hostLocalLeases(list, rt.ContainerID, rt.IfName) {
		res.IPs = append(res.IPs, &current.IPConfig{Address: *ip})
	}
	if len(res.IPs) == 0 {
		return nil
	}
	return res
}

// interfaceAddrs are the global addresses and the MAC of ifName in the
// network namespace at path.
func interfaceAddrs(path, ifName string) ([]*net.IPNet, string, error) {
	var ips []*net.IPNet
	var mac string
	err := netns.InNet(path, func() error {
		iface, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return err
		}
		mac = iface.HardwareAddr.String()
		for _, addr := range addrs {
			if ipn, ok := addr.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
				ips = append(ips, ipn)
			}
		}
		return nil
	})
	return ips, mac, err
}

// hostLocalLeases are the addresses host-local leased to the pod on the
// list's network: files named by the address in its data directory
// (ipam.dataDir, default /var/lib/cni/networks) under the network's
// name, holding the container ID and the interface's name. The prefix
// length is not kept there; a host route is what a DEL needs.
func hostLocalLeases(list *libcni.NetworkConfigList, containerID, ifName string) []*net.IPNet {
	var out []*net.IPNet
	for _, p := range list.Plugins {
		var conf struct {
			IPAM struct {
				Type    string `json:"type"`
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		}
		if json.Unmarshal(p.Bytes, &conf) != nil || conf.IPAM.Type != "host-local" {
			continue
		}
		dir := conf.IPAM.DataDir
		if dir == "" {
			dir = "/var/lib/cni/networks"
		}
		entries, _ := os.ReadDir(filepath.Join(dir, list.Name))
		for _, e := range entries {
			ip := net.ParseIP(e.Name())
			if ip == nil {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, list.Name, e.Name()))
			if err != nil {
				continue
			}
			lines := strings.Fields(string(data))
			if len(lines) == 0 || lines[0] != containerID || len(lines) > 1 && lines[1] != ifName {
				continue
			}
			bits := 32
			if ip.To4() == nil {
				bits = 128
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		}
	}
	return out
}
