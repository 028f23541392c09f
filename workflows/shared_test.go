package workflows

import (
	"reflect"
	"testing"

	"github.com/iru-responder/responder/playbooks"
)

// sixPhases is a playbook of name and version with one notification per
// phase.
func sixPhases(name, version, message string) *playbooks.Playbook {
	pb := &playbooks.Playbook{Name: name, Version: version}
	for _, ph := range playbooks.Phases {
		pb.Phases = append(pb.Phases, playbooks.Phase{Name: ph, Entries: []playbooks.Entry{{Step: &playbooks.Step{
			ID: ph, Action: "notify.send", Params: map[string]string{"message": message}}}}})
	}
	return pb
}

// TestSharedPlaybook: incidents that resolve the same playbook version
// share one decoded copy; an edited playbook under the same version is not
// taken for it.
func TestSharedPlaybook(t *testing.T) {
	first := sharedPlaybook(sixPhases("shared-test", "1.0.0", "a"))
	tests := []struct {
		name      string
		pb        *playbooks.Playbook
		wantFirst bool
	}{
		{"same content", sixPhases("shared-test", "1.0.0", "a"), true},
		{"edited under the same version", sixPhases("shared-test", "1.0.0", "b"), false},
		{"another version", sixPhases("shared-test", "1.0.1", "a"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sharedPlaybook(tt.pb)
			if (got == first) != tt.wantFirst {
				t.Errorf("shared copy is the first: %t, want %t", got == first, tt.wantFirst)
			}
			if !reflect.DeepEqual(got, tt.pb) {
				t.Errorf("shared copy differs from the playbook resolved: %+v", got)
			}
		})
	}
}

// TestInheritLeavesSharedPlaybook: a follow-up incident adds its inherited
// compensations to its own copy of the playbook, never to the copy the
// worker's other incidents of that version share.
func TestInheritLeavesSharedPlaybook(t *testing.T) {
	shared := sharedPlaybook(sixPhases(OrphanedCompensationsPlaybook, "shared-test", "a"))
	w := &incident{in: followUpInput(inherited()), pb: shared}
	if err := w.inherit(); err != nil {
		t.Fatal(err)
	}
	if w.pb == shared {
		t.Fatal("the follow-up's playbook is the shared copy")
	}
	if got, want := len(w.pb.Phases[4].Entries), 2; got != want {
		t.Errorf("follow-up's recovery phase has %d entries, want %d (the inherited compensations first)", got, want)
	}
	if !reflect.DeepEqual(shared, sixPhases(OrphanedCompensationsPlaybook, "shared-test", "a")) {
		t.Errorf("the shared playbook changed: recovery has %d entries", len(shared.Phases[4].Entries))
	}
}
