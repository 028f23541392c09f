//go:build integration

package detectors_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/alert"
	amconfig "github.com/prometheus/alertmanager/config"
	amcommon "github.com/prometheus/alertmanager/config/common"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/iru-responder/responder/internal/intake/auth"
)

// amKit loads deploy/detectors/alertmanager.yml with Alertmanager's own
// loader and returns the IRU receiver's webhook config, pointed at the
// intake under test and at a credentials file holding key.
func amKit(t *testing.T, intakeURL, key string) (*amconfig.Config, *webhook.WebhookConfig) {
	t.Helper()
	cfg, err := amconfig.LoadFile("alertmanager.yml")
	if err != nil {
		t.Fatalf("Alertmanager refuses the kit: %v", err)
	}
	var rcv *amconfig.Receiver
	for i := range cfg.Receivers {
		if cfg.Receivers[i].Name == "iru-responder" {
			rcv = &cfg.Receivers[i]
		}
	}
	if rcv == nil || len(rcv.WebhookConfigs) != 1 {
		t.Fatalf("want one webhook config in receiver iru-responder, got %+v", rcv)
	}
	wh := rcv.WebhookConfigs[0]
	if !wh.SendResolved() {
		t.Error("send_resolved is off: resolved alerts would never reach the intake")
	}
	if wh.MaxAlerts == 0 || wh.MaxAlerts > 5000 {
		t.Errorf("max_alerts = %d, want 1..5000 (the intake's limit per request)", wh.MaxAlerts)
	}
	a := wh.HTTPConfig.Authorization
	if a == nil || a.Type != "Bearer" || a.CredentialsFile != "/etc/alertmanager/secrets/iru-intake-key" || a.Credentials != "" {
		t.Fatalf("authorization = %+v, want a Bearer credentials_file and no inline key", a)
	}
	if u := string(wh.URL); u != "https://iru.example.internal/v1/alerts/alertmanager" {
		t.Errorf("url = %q", u)
	}
	// The test's own intake and key file replace the kit's addresses.
	keyFile := filepath.Join(t.TempDir(), "iru-intake-key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	a.CredentialsFile = keyFile
	wh.URL = amcommon.SecretTemplateURL(intakeURL + "/v1/alerts/alertmanager")
	return cfg, wh
}

// amNotify sends alerts as one group through Alertmanager's webhook
// notifier built from wh.
func amNotify(t *testing.T, wh *webhook.WebhookConfig, alerts ...*alert.Alert) notify.NotifyVerdict {
	t.Helper()
	tmpl, err := template.FromGlobs(nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExternalURL, _ = url.Parse("http://alertmanager.lab:9093")
	n, err := webhook.New(wh, tmpl, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := notify.WithGroupKey(context.Background(), `{}/{severity=~"critical|high|warning|page"}:{alertname="ContainerShell"}`)
	ctx = notify.WithReceiverName(ctx, "iru-responder")
	ctx = notify.WithGroupLabels(ctx, model.LabelSet{"alertname": "ContainerShell"})
	return n.Notify(ctx, alerts...)
}

func amAlert(container string, starts, ends time.Time) *alert.Alert {
	return alert.New(model.Alert{
		Labels: model.LabelSet{"alertname": "ContainerShell", "severity": "critical", "container": model.LabelValue(container),
			"instance": "10.10.0.21:9100"},
		Annotations:  model.LabelSet{"summary": model.LabelValue("shell in " + container)},
		StartsAt:     starts,
		EndsAt:       ends,
		GeneratorURL: "http://prometheus.lab:9090/graph",
	}, starts, false)
}

// TestAlertmanagerKit drives Alertmanager's own config loader, route tree
// and webhook notifier against the intake: a firing group is accepted
// and spooled as firing alerts for the mapped asset; the same group
// resolved is spooled as resolved alerts (they never open an incident:
// the forwarder only signals a running one); a wrong key is refused.
func TestAlertmanagerKit(t *testing.T) {
	const key = "am-kit-key-0123456789"
	in := newKitIntake(t, auth.Detector{Name: "alertmanager", Format: "alertmanager",
		APIKeys: []auth.APIKey{{ID: "k1", SHA256: auth.HashKey("k1", key)}}})
	cfg, wh := amKit(t, in.URL, key)

	// The kit's route sends a critical alert to the IRU receiver.
	var receivers []string
	for _, r := range dispatch.NewRoute(cfg.Route, nil).Match(model.LabelSet{"alertname": "ContainerShell", "severity": "critical"}) {
		receivers = append(receivers, r.RouteOpts.Receiver)
	}
	if len(receivers) == 0 || receivers[0] != "iru-responder" {
		t.Fatalf("route sends a critical alert to %v, want iru-responder", receivers)
	}

	starts := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	if v := amNotify(t, wh, amAlert("web-1", starts, time.Time{}), amAlert("db-1", starts, time.Time{})); v.Err() != nil {
		t.Fatalf("firing group: %v", v.Err())
	}
	ends := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	if v := amNotify(t, wh, amAlert("web-1", starts, ends)); v.Err() != nil {
		t.Fatalf("resolved group: %v", v.Err())
	}

	recs := in.records(t)
	if len(recs) != 3 {
		t.Fatalf("spooled %d records, want 3", len(recs))
	}
	for i, want := range []struct {
		asset    string
		resolved bool
	}{{"web-1", false}, {"db-1", false}, {"web-1", true}} {
		r := recs[i]
		if r.Alert.Asset != want.asset || !r.Mapped || r.Resolved != want.resolved {
			t.Errorf("record %d: asset %q mapped %v resolved %v, want %q true %v", i, r.Alert.Asset, r.Mapped, r.Resolved, want.asset, want.resolved)
		}
		if r.Alert.Source != "alertmanager" || r.Alert.Rule != "ContainerShell" || r.Alert.Severity != "critical" || r.OpenedBy != "alertmanager/k1" {
			t.Errorf("record %d: %+v", i, r)
		}
		if r.Playbook != "container-compromise" {
			t.Errorf("record %d: playbook %q", i, r.Playbook)
		}
		if !r.Alert.ObservedAt.Equal(starts) {
			t.Errorf("record %d: observed %v, want startsAt %v", i, r.Alert.ObservedAt, starts)
		}
		if got := r.Alert.Labels["receiver"]; got != "iru-responder" {
			t.Errorf("record %d: receiver label %q", i, got)
		}
	}
	// The resolution is the same alert (fingerprint) as the firing one,
	// with Alertmanager's endsAt.
	if recs[2].Alert.Fingerprint != recs[0].Alert.Fingerprint || recs[2].Key != recs[0].Key {
		t.Errorf("resolved alert fingerprint/key %q/%q, firing %q/%q", recs[2].Alert.Fingerprint, recs[2].Key, recs[0].Alert.Fingerprint, recs[0].Key)
	}
	if a := recs[2].Alert; !a.Resolved || !a.ResolvedAt.Equal(ends) || recs[0].Alert.Resolved {
		t.Errorf("incident alert: resolved %v at %v, want true at %v (firing one resolved=%v)", a.Resolved, a.ResolvedAt, ends, recs[0].Alert.Resolved)
	}
	if got := recs[2].Alert.Labels["endsAt"]; got != ends.Format(time.RFC3339) {
		t.Errorf("resolved endsAt label %q, want %q", got, ends.Format(time.RFC3339))
	}

	// Truncation by max_alerts: a group larger than the limit arrives cut,
	// and the intake accepts what came.
	big := make([]*alert.Alert, wh.MaxAlerts+3)
	for i := range big {
		big[i] = amAlert(fmt.Sprintf("ghost-%d", i), starts, time.Time{})
	}
	if v := amNotify(t, wh, big...); v.Err() != nil {
		t.Fatalf("large group: %v", v.Err())
	}
	if got := len(in.records(t)) - 3; got != int(wh.MaxAlerts) {
		t.Errorf("large group: spooled %d, want max_alerts=%d", got, wh.MaxAlerts)
	}

	// A wrong key: Alertmanager gets 401 and does not retry.
	wrong := filepath.Join(t.TempDir(), "wrong-key")
	if err := os.WriteFile(wrong, []byte("not-the-key"), 0o400); err != nil {
		t.Fatal(err)
	}
	wh.HTTPConfig.Authorization.CredentialsFile = wrong
	n := len(in.records(t))
	v := amNotify(t, wh, amAlert("web-1", starts, time.Time{}))
	if v.Err() == nil || v.ShouldRetry() {
		t.Errorf("wrong key: verdict err=%v retry=%v, want a 401 that is not retried", v.Err(), v.ShouldRetry())
	}
	if got := len(in.records(t)); got != n {
		t.Errorf("wrong key: %d records spooled", got-n)
	}
}
