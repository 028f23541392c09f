package api

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/evidence"
)

// sha256RE is an evidence object's address: its SHA-256, lower-case hex.
var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// evidenceObject answers one evidence object of the incident, named by its
// SHA-256. The locker verifies it while reading and records the read, with
// the caller's identity, in the incident's chain of custody.
func (rs *Responder) evidenceObject(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ref, err := parseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Error: err.Error(), Code: "bad_id"})
		return
	}
	sum := r.PathValue("sha256")
	if !sha256RE.MatchString(sum) {
		writeError(w, http.StatusBadRequest, apiError{Error: "sha256: want 64 lower-case hex digits", Code: "bad_sha256"})
		return
	}
	incidentID, ok := rs.evidenceIncident(w, r, ref)
	if !ok {
		return
	}
	found, ok := rs.lastEvidence(w, r, incidentID, func(m evidence.Meta) bool { return m.SHA256 == sum && !m.Deleted })
	if !ok {
		return
	}
	if found == nil {
		writeError(w, http.StatusNotFound, apiError{Error: "no such evidence object in this incident", Code: "no_evidence_object"})
		return
	}
	rc, meta, err := rs.evidence.Get(r.Context(), found.Ref, evidence.Reader{Identity: id.Actor(), Reason: "evidence download through the responder API from " + id.SourceIP})
	if err != nil {
		rs.log.Error("read evidence", "ref", found.Ref, "err", err)
		writeError(w, http.StatusInternalServerError, apiError{Error: "the evidence object could not be read", Code: "evidence_failed"})
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", sum))
	w.Header().Set("Content-Length", strconv.FormatInt(meta.Size, 10))
	w.Header().Set("X-Evidence-Ref", string(found.Ref))
	w.Header().Set("X-Evidence-SHA256", sum)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		// The status is sent: a failed verification or read cuts the body
		// short of Content-Length, which the client sees as an error.
		rs.log.Error("evidence download cut short", "ref", found.Ref, "err", err)
	}
}

// lastEvidence returns the newest of the incident's evidence objects that
// match (nil when none does); it answers 500 and false when the locker
// cannot be listed.
func (rs *Responder) lastEvidence(w http.ResponseWriter, r *http.Request, incidentID string, match func(evidence.Meta) bool) (*evidence.Meta, bool) {
	objs, err := rs.evidence.List(r.Context(), incidentID)
	if err != nil {
		rs.log.Error("list evidence", "incident", incidentID, "err", err)
		writeError(w, http.StatusInternalServerError, apiError{Error: "the evidence locker could not be read", Code: "evidence_failed"})
		return nil, false
	}
	var found *evidence.Meta
	for i := range objs {
		if match(objs[i]) {
			found = &objs[i]
		}
	}
	return found, true
}
