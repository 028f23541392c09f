package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/workflows"
)

// pagingVisibility serves n incidents from ListWorkflow in pages no larger
// than max (as the server caps PageSize), with an offset as the page token,
// and records each request's page size.
type pagingVisibility struct {
	IncidentClient
	n, max int
	sizes  []int32
	// failAt, if > 0, makes the call with that ordinal (1-based) fail.
	failAt int
}

func (p *pagingVisibility) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	p.sizes = append(p.sizes, req.GetPageSize())
	if p.failAt > 0 && len(p.sizes) == p.failAt {
		return nil, serviceerror.NewUnavailable("visibility down")
	}
	from := 0
	if t := req.GetNextPageToken(); len(t) > 0 {
		var err error
		if from, err = strconv.Atoi(string(t)); err != nil {
			return nil, serviceerror.NewInvalidArgument("bad token")
		}
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > p.max {
		size = p.max
	}
	to := min(from+size, p.n)
	dc := converter.GetDefaultDataConverter()
	sev, _ := dc.ToPayload("high")
	resp := &workflowservice.ListWorkflowExecutionsResponse{}
	for i := from; i < to; i++ {
		resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
			Execution: &commonpb.WorkflowExecution{WorkflowId: workflows.IncidentWorkflowID(fmt.Sprintf("k%d", i)), RunId: "r"},
			Status:    enums.WORKFLOW_EXECUTION_STATUS_RUNNING,
			StartTime: timestamppb.New(time.Unix(int64(i), 0)),
			SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
				workflows.SeverityKey.GetName(): sev,
			}},
		})
	}
	if to < p.n {
		resp.NextPageToken = []byte(strconv.Itoa(to))
	}
	return resp, nil
}

func listRecorder(t *testing.T, v *pagingVisibility, query string) *httptest.ResponseRecorder {
	t.Helper()
	rs := &Responder{temporal: v, log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	rs.list(w, httptest.NewRequest("GET", "/api/v1/incidents"+query, nil), auth.Identity{})
	return w
}

// TestListPages: a page of up to MaxListLimit is asked of visibility in
// one call; where the server caps its pages lower, the page is gathered
// from consecutive visibility pages, each asking no more than is still
// wanted; next_page_token continues exactly after the last incident
// returned.
func TestListPages(t *testing.T) {
	// serverCap is a server left at its default
	// frontend.visibilityMaxPageSize.
	const serverCap = 1000
	tests := []struct {
		name      string
		n         int
		query     string
		max       int // the server's page cap
		want      int
		wantSizes []int32
		more      bool
	}{
		{"default page", 120, "", MaxListLimit, DefaultListLimit, []int32{50}, true},
		{"one visibility page", 3000, "?limit=700", MaxListLimit, 700, []int32{700}, true},
		{"ten thousand in one call", 10000, "?limit=10000", MaxListLimit, 10000, []int32{10000}, false},
		{"ten thousand of more in one call", 12000, "?limit=10000", MaxListLimit, 10000, []int32{10000}, true},
		{"fewer than asked", 1500, "?limit=10000", MaxListLimit, 1500, []int32{10000}, false},
		{"none", 0, "?limit=10", MaxListLimit, 0, []int32{10}, false},
		{"capped server: ten thousand in ten calls", 10000, "?limit=10000", serverCap, 10000, []int32{10000, 9000, 8000, 7000, 6000, 5000, 4000, 3000, 2000, 1000}, false},
		{"capped server: partial last call", 5000, "?limit=2500", serverCap, 2500, []int32{2500, 1500, 500}, true},
		{"capped server: fewer than asked", 1500, "?limit=10000", serverCap, 1500, []int32{10000, 9000}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &pagingVisibility{n: tt.n, max: tt.max}
			w := listRecorder(t, v, tt.query)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			var l IncidentList
			if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil {
				t.Fatalf("answer is not JSON: %v\n%.300s", err, w.Body)
			}
			if len(l.Incidents) != tt.want {
				t.Fatalf("%d incidents, want %d", len(l.Incidents), tt.want)
			}
			if fmt.Sprint(v.sizes) != fmt.Sprint(tt.wantSizes) {
				t.Errorf("visibility page sizes %v, want %v", v.sizes, tt.wantSizes)
			}
			for i, s := range l.Incidents {
				if s.ID != fmt.Sprintf("k%d", i) || s.Severity != "high" || !s.Open {
					t.Fatalf("incident %d = %+v", i, s)
				}
			}
			if (l.NextPageToken != "") != tt.more {
				t.Fatalf("next_page_token %q, want one: %v", l.NextPageToken, tt.more)
			}
			if !tt.more {
				return
			}
			// The token continues right after the last incident.
			w = listRecorder(t, v, "?limit=1&page_token="+l.NextPageToken)
			var next IncidentList
			if err := json.Unmarshal(w.Body.Bytes(), &next); err != nil || len(next.Incidents) != 1 {
				t.Fatalf("next page: %v %s", err, w.Body)
			}
			if got, want := next.Incidents[0].ID, fmt.Sprintf("k%d", tt.want); got != want {
				t.Errorf("next page starts at %s, want %s", got, want)
			}
		})
	}
}

// TestListLimitValidated: a limit outside 1..MaxListLimit or not a number
// is refused before visibility is asked.
func TestListLimitValidated(t *testing.T) {
	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=10001", "?limit=x", "?limit=1e4", "?page_token=%25%25"} {
		t.Run(q, func(t *testing.T) {
			v := &pagingVisibility{n: 10, max: visibilityPageSize}
			w := listRecorder(t, v, q)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", w.Code, w.Body)
			}
			if len(v.sizes) != 0 {
				t.Errorf("visibility asked %d times", len(v.sizes))
			}
		})
	}
}

// TestListFailureMidway: when a later visibility page fails (a server
// that caps pages at 1,000) the answer is an error, not a silently short
// page.
func TestListFailureMidway(t *testing.T) {
	v := &pagingVisibility{n: 5000, max: 1000, failAt: 2}
	w := listRecorder(t, v, "?limit=5000")
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502: %s", w.Code, w.Body)
	}
}

// BenchmarkListEncode measures building and encoding one answer of 10,000
// incidents from visibility pages (the API's share of listing; the
// visibility store's share is measured against a dev server by
// BenchmarkListIncidents).
func BenchmarkListEncode(b *testing.B) {
	rs := &Responder{log: slog.New(slog.DiscardHandler)}
	b.ReportAllocs()
	for b.Loop() {
		v := &pagingVisibility{n: MaxListLimit, max: visibilityPageSize}
		rs.temporal = v
		w := httptest.NewRecorder()
		rs.list(w, httptest.NewRequest("GET", "/api/v1/incidents?limit=10000", nil), auth.Identity{})
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
