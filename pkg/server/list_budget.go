package server

import (
	"fmt"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/sandbox"
)

// The kubelet relists every pod and container of the node each second, in
// one reply each. An object crid accepts must never make that reply
// larger than a message may be: 17 containers with 1 MiB names once made
// every ListContainers fail, which would blind a kubelet to the whole
// node. Each object's fields are bounded at the edge (package validate);
// this bounds their sum, refusing the object that would not fit.

// listBudget is what one List reply may carry: the message limit less
// room for framing and for creations racing this check.
const listBudget = config.MaxMessageSize - 1<<20

// listEntryOverhead covers an entry's IDs, state, times and framing.
const listEntryOverhead = 512

// listedSize is about what an object takes in a List reply.
func listedSize(nameLen int, image string, labels, annotations map[string]string) int {
	n := listEntryOverhead + nameLen + len(image)
	for k, v := range labels {
		n += len(k) + len(v) + 8
	}
	for k, v := range annotations {
		n += len(k) + len(v) + 8
	}
	return n
}

// fitsInList refuses an object of size bytes where what is listed already
// takes used.
func fitsInList(kind string, used, size int) error {
	if used+size > listBudget {
		return fmt.Errorf("the node's %s would take %d bytes in one List reply, past the %d a reply may carry: remove some, or give this one fewer labels and annotations: %w",
			kind, used+size, listBudget, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// containersListed is what ListContainers of every container takes,
// those being created included. A sum under the read lock: a sorted copy
// of 2250 containers per CreateContainer grew with the node.
func (s *Server) containersListed() int {
	n := 0
	s.containers.Each(func(c *container.Container) {
		n += listedSize(len(c.Name), c.Image, c.Labels, c.Annotations)
	})
	return n
}

// sandboxesListed is what ListPodSandbox of every pod takes.
func (s *Server) sandboxesListed() int {
	n := 0
	s.sandboxes.Each(func(sb *sandbox.Sandbox) {
		n += listedSize(len(sb.Spec.Name)+len(sb.Spec.Namespace)+len(sb.Spec.UID), sb.Spec.RuntimeHandler, sb.Spec.Labels, sb.Spec.Annotations)
	})
	return n
}
