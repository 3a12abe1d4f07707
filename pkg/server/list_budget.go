package server

import (
	"fmt"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/errdefs"
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
func listedSize(name, image string, labels, annotations map[string]string) int {
	n := listEntryOverhead + len(name) + len(image)
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

// containersListed is what ListContainers of every container takes.
func (s *Server) containersListed() int {
	n := 0
	for _, c := range s.containers.ListShared() {
		n += listedSize(c.Name, c.Image, c.Labels, c.Annotations)
	}
	return n
}

// sandboxesListed is what ListPodSandbox of every pod takes.
func (s *Server) sandboxesListed() int {
	n := 0
	for _, sb := range s.sandboxes.ListShared() {
		n += listedSize(sb.Spec.Name+sb.Spec.Namespace+sb.Spec.UID, sb.Spec.RuntimeHandler, sb.Spec.Labels, sb.Spec.Annotations)
	}
	return n
}
