// Package cni connects pods to the network through CNI plugins: it finds the
// pod network's configuration, checks that its plugins are installed, and
// (with the sandbox issue) runs ADD/DEL/CHECK/STATUS through libcni.
package cni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// Network is the pod network: the first usable configuration in the
// config dir, in lexical order of file name, as the kubelet's other
// runtimes choose it.
type Network struct {
	File string
	List *libcni.NetworkConfigList
}

// Name is the network's name as its configuration gives it.
func (n *Network) Name() string { return n.List.Name }

// NotReadyError says why there is no usable pod network.
type NotReadyError struct {
	Dir     string
	Reasons []string // one per file that was tried, or why none could be
}

func (e *NotReadyError) Error() string {
	return "no usable CNI network in " + e.Dir + ": " + strings.Join(e.Reasons, "; ")
}

var confExtensions = []string{".conflist", ".conf", ".json"}

// Discover finds the pod network in confDir whose plugins are all present
// in pluginDirs. Files that do not parse, or whose plugins are missing, are
// passed over with their reason recorded, as CRI-O and containerd do: a
// broken file must not hide a good one after it.
func Discover(confDir string, pluginDirs []string) (*Network, error) {
	files, err := libcni.ConfFiles(confDir, confExtensions)
	if err != nil {
		return nil, &NotReadyError{Dir: confDir, Reasons: []string{fmt.Sprintf("read %s: %v", confDir, err)}}
	}
	if len(files) == 0 {
		return nil, &NotReadyError{Dir: confDir, Reasons: []string{
			fmt.Sprintf("no network configuration (*.conflist, *.conf, *.json) in %s", confDir)}}
	}
	sort.Strings(files)
	var reasons []string
	for _, f := range files {
		list, err := load(f)
		if err == nil {
			err = findPlugins(list, pluginDirs)
		}
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", filepath.Base(f), err))
			continue
		}
		return &Network{File: f, List: list}, nil
	}
	return nil, &NotReadyError{Dir: confDir, Reasons: reasons}
}

func load(file string) (*libcni.NetworkConfigList, error) {
	if filepath.Ext(file) == ".conflist" {
		return libcni.ConfListFromFile(file)
	}
	// A .conf holds one plugin's configuration; libcni still reads it, and
	// kubeadm-era nodes still ship them.
	conf, err := libcni.ConfFromFile(file)
	if err != nil {
		return nil, err
	}
	if conf.Network.Type == "" {
		return nil, errors.New("no plugin type")
	}
	return libcni.ConfListFromConf(conf)
}

func findPlugins(list *libcni.NetworkConfigList, dirs []string) error {
	if len(list.Plugins) == 0 {
		return errors.New("no plugins")
	}
	for _, p := range list.Plugins {
		if _, err := FindPlugin(p.Network.Type, dirs); err != nil {
			return err
		}
	}
	return nil
}

// FindPlugin returns the path of the executable plugin named typ in the
// first of dirs that has it.
func FindPlugin(typ string, dirs []string) (string, error) {
	if typ == "" || strings.ContainsRune(typ, '/') {
		return "", fmt.Errorf("plugin type %q is not a plain file name", typ)
	}
	for _, d := range dirs {
		p := filepath.Join(d, typ)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("plugin %q not found in %s", typ, strings.Join(dirs, ":"))
}
