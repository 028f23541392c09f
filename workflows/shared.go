package workflows

import (
	"reflect"
	"sync"

	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/playbooks"
)

// sharedValues keeps, per key, one copy of a value that many runs on this
// worker decode alike (the playbook version they run, the decision keys),
// so that a worker holding thousands of waiting incidents holds it once
// instead of once per incident. Runs only read what it returns.
//
// It is deterministic: get returns a value equal to the one it is given,
// whichever copy it is, so a run's commands never depend on it.
type sharedValues[T any] struct {
	mu sync.Mutex
	m  map[string]*T
}

// get returns the copy held under key if it equals v, else keeps v as the
// copy and returns it (a playbook edited under the same version replaces
// the one held; the runs that hold the old copy keep it).
func (c *sharedValues[T]) get(key string, v *T) *T {
	c.mu.Lock()
	defer c.mu.Unlock()
	if held, ok := c.m[key]; ok && reflect.DeepEqual(held, v) {
		return held
	}
	if c.m == nil {
		c.m = map[string]*T{}
	}
	c.m[key] = v
	return v
}

var (
	// sharedPlaybooks holds the playbooks by name and version.
	sharedPlaybooks sharedValues[playbooks.Playbook]
	// sharedKeys holds the decision keys (one set per worker).
	sharedKeys sharedValues[decision.KeySet]
)

// sharedPlaybook is the worker's copy of pb (see [sharedValues]).
func sharedPlaybook(pb *playbooks.Playbook) *playbooks.Playbook {
	return sharedPlaybooks.get(pb.Name+"\x00"+pb.Version, pb)
}
