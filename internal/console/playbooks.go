package console

import (
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/iru-responder/responder/playbooks"
)

// playbookView is one playbook file drawn as its phases and steps, or the
// validation errors that keep it from loading.
type playbookView struct {
	File        string
	Name        string
	Version     string
	Description string
	Drill       bool
	Escalation  []string
	Phases      []playbookPhase
	// Errors are the validator's errors ("file:line: message"); a file
	// with errors has no phases.
	Errors []string
}

// playbookPhase is one box of a playbook's phase strip.
type playbookPhase struct {
	Name    string
	Entries []playbookEntry
}

// playbookEntry is a step, or a group of steps that run in parallel.
type playbookEntry struct {
	Parallel bool
	Steps    []playbookStep
}

// playbookStep is what the strip shows of a step: its action and guards.
type playbookStep struct {
	ID, Action  string
	Approval    string // "ir-lead ×1", "" without approval
	HighRisk    bool
	Conditional bool
	Undo        string // the compensation's action
}

// loadPlaybooks parses every playbook file of fsys on its own, so that a
// broken file shows its errors and the others still show.
func loadPlaybooks(fsys fs.FS) ([]playbookView, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("console: read playbooks: %w", err)
	}
	var out []playbookView
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || (path.Ext(name) != ".yaml" && path.Ext(name) != ".yml") {
			continue
		}
		v := playbookView{File: name}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			v.Errors = []string{err.Error()}
			out = append(out, v)
			continue
		}
		pb, errs := playbooks.Parse(name, src)
		for _, err := range errs {
			v.Errors = append(v.Errors, err.Error())
		}
		if pb != nil && len(errs) == 0 {
			v.Name, v.Version, v.Description, v.Drill, v.Escalation = pb.Name, pb.Version, pb.Description, pb.Drill, pb.Escalation
			v.Phases = phasesOfPlaybook(pb)
		}
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b playbookView) int { return strings.Compare(a.File, b.File) })
	return out, nil
}

func phasesOfPlaybook(pb *playbooks.Playbook) []playbookPhase {
	out := make([]playbookPhase, 0, len(pb.Phases))
	for _, ph := range pb.Phases {
		pp := playbookPhase{Name: ph.Name}
		for _, e := range ph.Entries {
			pe := playbookEntry{Parallel: e.Parallel != nil}
			for _, s := range e.Steps() {
				ps := playbookStep{ID: s.ID, Action: s.Action, HighRisk: s.Risk == playbooks.RiskHigh, Conditional: s.When != ""}
				if a := s.Approval; a != nil {
					ps.Approval = fmt.Sprintf("%s ×%d", strings.Join(a.Roles, " or "), a.Quorum)
				}
				if s.Compensation != nil {
					ps.Undo = s.Compensation.Action
				}
				pe.Steps = append(pe.Steps, ps)
			}
			pp.Entries = append(pp.Entries, pe)
		}
		out = append(out, pp)
	}
	return out
}

// playbooksPage shows every playbook the API server's folder holds.
func (c *Console) playbooksPage(w http.ResponseWriter, r *http.Request, sess *session) {
	views, err := loadPlaybooks(c.playbooks)
	if err != nil {
		c.failPage(w, r, sess, err)
		return
	}
	pd := basePage(sess, "Playbooks")
	pd.Playbooks = views
	c.render(w, r, http.StatusOK, "playbooks", pd)
}
