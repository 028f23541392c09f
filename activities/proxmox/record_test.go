//go:build integration

package proxmox

import (
	"context"
	"strings"
	"testing"

	"github.com/iru-responder/responder/activities"
)

// description reads a container's description through the API.
func (l *labEnv) description(t *testing.T, node string, vmid int) string {
	t.Helper()
	var conf map[string]any
	if err := l.acts.call("test").get(context.Background(), ctPath(node, vmid)+"/config", &conf); err != nil {
		t.Fatal(err)
	}
	return str(conf["description"])
}

// setDescription edits a container's description through the PVE API, as
// anyone with VM.Config.Options on it can.
func (l *labEnv) setDescription(t *testing.T, node string, vmid int, d string) {
	t.Helper()
	if err := l.acts.call("test").put(context.Background(), ctPath(node, vmid)+"/config", map[string]any{"description": d}, nil); err != nil {
		t.Fatal(err)
	}
}

func ctPath(node string, vmid int) string {
	return (&ctRef{Node: node, VMID: vmid}).path("")
}

// TestForgedQuarantineRecordRefused attacks pve.unisolate (and pve.restore)
// with quarantine records edited in the container's description: a prior
// state rewritten to open the firewall, an unsigned record, a record
// signed for another container, a record signed by another key. Each is
// refused (final Conflict) and the container stays isolated.
func TestForgedQuarantineRecordRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		forge func(t *testing.T, l *labEnv, d string) string
	}{
		{"prior state rewritten", func(t *testing.T, l *labEnv, d string) string {
			enc, _ := (&ctState{conf: map[string]any{"description": d}}).recordLines()
			rec, err := decodeRecord(enc)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Prior.Options == nil {
				rec.Prior.Options = map[string]string{}
			}
			rec.Prior.Options["enable"] = "0" // "the firewall was off"
			forged, err := encodeRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Replace(d, enc, forged, 1) // the old signature stays
		}},
		{"signature removed", func(t *testing.T, _ *labEnv, d string) string {
			var keep []string
			for _, line := range strings.Split(d, "\n") {
				if !strings.HasPrefix(line, recordSigPrefix) {
					keep = append(keep, line)
				}
			}
			return strings.Join(keep, "\n")
		}},
		{"record of another container", func(t *testing.T, l *labEnv, _ string) string {
			other := input(activities.PVEIsolate, "keycloak", map[string]string{"allow": "10.10.0.0/24"})
			mustRun(t, l.acts, other)
			return l.description(t, "pve1", 101)
		}},
		{"signed by another key", func(t *testing.T, l *labEnv, d string) string {
			enc, _ := (&ctState{conf: map[string]any{"description": d}}).recordLines()
			rec, _ := decodeRecord(enc)
			mallory := &labEnv{ev: l.ev, sink: l.sink, key: newSoftKey(t)}
			a := mallory.newActs(t, l.cfg, l.sink)
			x := a.call("forge")
			x.ct = &ctRef{Node: "pve1", VMID: 100}
			fd, err := x.signedDescription(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			return fd
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			mustRun(t, l.acts, input(activities.PVEIsolate, "api-gateway", map[string]string{"allow": "10.10.0.0/24"}))
			l.setDescription(t, "pve1", 100, tc.forge(t, l, l.description(t, "pve1", 100)))
			for _, in := range []activities.ActionInput{
				input(activities.PVEUnisolate, "api-gateway", nil),
				input(activities.PVEIsolate, "api-gateway", map[string]string{"allow": "10.10.0.0/24"}),
			} {
				action := in.Action
				_, err := run(t, l.acts, in)
				if err == nil {
					t.Fatalf("%s acted on a forged record", action)
				}
				if typ, fin := errType(t, err); typ != activities.ErrTypeConflict || !fin || !strings.Contains(err.Error(), "quarantine record") {
					t.Fatalf("%s error = %v, want a final Conflict about the record", action, err)
				}
			}
			iso, err := l.srv.EffectiveIsolation(100)
			if err != nil {
				t.Fatal(err)
			}
			if !iso.Isolated || !iso.FirewallIsolated {
				t.Fatalf("container no longer isolated after a forged record: %+v", iso)
			}
		})
	}

	t.Run("genuine record still lifts", func(t *testing.T) {
		l := newLab(t)
		in := input(activities.PVEIsolate, "api-gateway", map[string]string{"allow": "10.10.0.0/24"})
		mustRun(t, l.acts, in)
		if d := l.description(t, "pve1", 100); !strings.Contains(d, recordSigPrefix) {
			t.Fatalf("isolation wrote no signature: %q", d)
		}
		mustRun(t, l.acts, input(activities.PVEUnisolate, "api-gateway", nil))
		if iso, _ := l.srv.EffectiveIsolation(100); iso.Isolated {
			t.Fatalf("genuine record did not lift the isolation: %+v", iso)
		}
	})
}
