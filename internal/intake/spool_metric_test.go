package intake

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iru-responder/responder/internal/intake/forward"
)

// TestSpoolPendingMetric: iru_intake_spool_pending shows what this API
// server holds undelivered (the forwarder does not run here), which an
// operator waits to see at 0 before removing a server.
func TestSpoolPendingMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	svc, err := Open(Config{SpoolDir: filepath.Join(t.TempDir(), "spool"), Detectors: testDetectors()},
		Deps{Assets: testAssets, Signaler: forward.TemporalSignaler{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	mux := http.NewServeMux()
	mux.Handle(Pattern, svc.Handler)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if v := metricValue(t, reg, "iru_intake_spool_pending", nil); v != 0 {
		t.Fatalf("empty spool: %v", v)
	}
	for i := range 3 {
		if r := postTo(t, srv.Client(), srv.URL, "generic", genericAlert("db-1", i), bearer(genericKey)...); r.status != http.StatusAccepted {
			t.Fatalf("post %d: %d", i, r.status)
		}
	}
	if v := metricValue(t, reg, "iru_intake_spool_pending", nil); v != 3 {
		t.Errorf("iru_intake_spool_pending = %v, want 3", v)
	}
}
