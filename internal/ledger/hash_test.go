//go:build integration

package ledger_test

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/ledger"
)

func sampleEntry() ledger.Entry {
	return ledger.Entry{
		Version:        ledger.HashVersion,
		Incident:       "inc-1",
		Seq:            2,
		Time:           time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		Actor:          "keycloak:iru/alice",
		Action:         "contain.isolate",
		Target:         "pve/node1/lxc/101",
		ParamsDigest:   sha256.Sum256([]byte(`{"vmid":101}`)),
		Outcome:        ledger.Outcome{Status: ledger.StatusOK, Detail: "isolated"},
		IdempotencyKey: "wf-1/2",
		PrevHash:       sha256.Sum256([]byte("prev")),
	}
}

// TestComputeHashEncoding recomputes the documented encoding independently,
// so a change to the encoding (which would break every stored chain) fails.
func TestComputeHashEncoding(t *testing.T) {
	e := sampleEntry()
	h := sha256.New()
	field := func(b []byte) {
		_ = binary.Write(h, binary.BigEndian, uint32(len(b)))
		h.Write(b)
	}
	u := func(n int, v uint64) []byte {
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, v)
		return b[8-n:]
	}
	field([]byte("iru-ledger/entry"))
	field(u(2, 1))
	field([]byte(e.Incident))
	field(u(8, uint64(e.Seq)))
	field(u(8, uint64(e.Time.UnixMicro())))
	field([]byte(e.Actor))
	field([]byte(e.Action))
	field([]byte(e.Target))
	field(e.ParamsDigest[:])
	field([]byte(e.Outcome.Status))
	field([]byte(e.Outcome.Detail))
	field([]byte(e.IdempotencyKey))
	field(e.PrevHash[:])
	var want ledger.Digest
	h.Sum(want[:0])
	if got := e.ComputeHash(); got != want {
		t.Fatalf("ComputeHash = %s, documented encoding gives %s", got, want)
	}
	// An entry with a decision: fields 14 to 18 follow.
	e.Decision = sampleDecision()
	field(u(8, uint64(e.Decision.Approvals)))
	field(u(8, uint64(e.Decision.Quorum)))
	field([]byte(e.Decision.StatementKeyID))
	field(e.Decision.StatementSig)
	field(e.Decision.StatementPayload)
	h.Sum(want[:0])
	if got := e.ComputeHash(); got != want {
		t.Fatalf("ComputeHash with a decision = %s, documented encoding gives %s", got, want)
	}
}

func sampleDecision() *ledger.Decision {
	return &ledger.Decision{Approvals: 1, Quorum: 2, StatementKeyID: "dk-1", StatementSig: []byte("sig"), StatementPayload: []byte(`{"sub":"alice"}`)}
}

func TestComputeHashCoversEveryField(t *testing.T) {
	base := sampleEntry().ComputeHash()
	tests := []struct {
		name string
		mod  func(e *ledger.Entry)
	}{
		{"version", func(e *ledger.Entry) { e.Version = 2 }},
		{"incident", func(e *ledger.Entry) { e.Incident = "inc-2" }},
		{"seq", func(e *ledger.Entry) { e.Seq = 3 }},
		{"time", func(e *ledger.Entry) { e.Time = e.Time.Add(time.Microsecond) }},
		{"actor", func(e *ledger.Entry) { e.Actor = "keycloak:iru/bob" }},
		{"action", func(e *ledger.Entry) { e.Action = "contain.isolatf" }},
		{"target", func(e *ledger.Entry) { e.Target = "" }},
		{"params", func(e *ledger.Entry) { e.ParamsDigest[31] ^= 1 }},
		{"status", func(e *ledger.Entry) { e.Outcome.Status = ledger.StatusFailed }},
		{"detail", func(e *ledger.Entry) { e.Outcome.Detail = "isolatedx" }},
		{"idempotency key", func(e *ledger.Entry) { e.IdempotencyKey = "wf-1/3" }},
		{"prev hash", func(e *ledger.Entry) { e.PrevHash[0] ^= 1 }},
		{"decision added", func(e *ledger.Entry) { e.Decision = &ledger.Decision{} }},
		// Moving a byte across a field boundary must change the hash too.
		{"boundary shift", func(e *ledger.Entry) { e.Action, e.Target = "contain.isolatep", "ve/node1/lxc/101" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEntry()
			tt.mod(&e)
			if e.ComputeHash() == base {
				t.Fatalf("changing %s left the hash unchanged", tt.name)
			}
		})
	}
}

func TestComputeHashCoversEveryDecisionField(t *testing.T) {
	withDecision := func() ledger.Entry {
		e := sampleEntry()
		e.Decision = sampleDecision()
		return e
	}
	base := withDecision().ComputeHash()
	for name, mod := range map[string]func(d *ledger.Decision){
		"approvals": func(d *ledger.Decision) { d.Approvals = 2 },
		"quorum":    func(d *ledger.Decision) { d.Quorum = 1 },
		"key id":    func(d *ledger.Decision) { d.StatementKeyID = "dk-2" },
		"signature": func(d *ledger.Decision) { d.StatementSig = []byte("siG") },
		"payload":   func(d *ledger.Decision) { d.StatementPayload = []byte(`{"sub":"bob"}`) },
		"boundary": func(d *ledger.Decision) {
			d.StatementSig, d.StatementPayload = []byte("sig{"), []byte(`"sub":"alice"}`)
		},
	} {
		e := withDecision()
		mod(e.Decision)
		if e.ComputeHash() == base {
			t.Errorf("changing the decision's %s left the hash unchanged", name)
		}
	}
}

func TestCheckpointDigestCoversEveryField(t *testing.T) {
	base := ledger.Checkpoint{Version: 1, Incident: "i", Seq: 3, HeadHash: sha256.Sum256(nil), Time: time.Unix(10, 0)}
	tests := []struct {
		name string
		mod  func(c *ledger.Checkpoint)
	}{
		{"version", func(c *ledger.Checkpoint) { c.Version = 2 }},
		{"incident", func(c *ledger.Checkpoint) { c.Incident = "j" }},
		{"seq", func(c *ledger.Checkpoint) { c.Seq = 2 }},
		{"head", func(c *ledger.Checkpoint) { c.HeadHash[0] ^= 1 }},
		{"time", func(c *ledger.Checkpoint) { c.Time = c.Time.Add(time.Microsecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			if c.Digest() == base.Digest() {
				t.Fatalf("changing %s left the checkpoint digest unchanged", tt.name)
			}
		})
	}
}

func TestCanonicalJSON(t *testing.T) {
	type params struct {
		Zeta  int    `json:"zeta"`
		Alpha string `json:"alpha"`
	}
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"struct keys sorted", params{Zeta: 1, Alpha: "<a&b>"}, `{"alpha":"<a&b>","zeta":1}`},
		{"map keys sorted", map[string]any{"b": []any{2, "x"}, "a": nil}, `{"a":null,"b":[2,"x"]}`},
		{"nested", map[string]any{"o": map[string]int{"y": 1, "x": 2}}, `{"o":{"x":2,"y":1}}`},
		{"large number kept", map[string]any{"n": uint64(18446744073709551615)}, `{"n":18446744073709551615}`},
		{"nil", nil, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ledger.CanonicalJSON(tt.in)
			if err != nil || string(got) != tt.want {
				t.Fatalf("CanonicalJSON = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
	a, _ := ledger.ParamsDigest(params{Zeta: 1, Alpha: "x"})
	b, _ := ledger.ParamsDigest(map[string]any{"alpha": "x", "zeta": 1})
	if a != b {
		t.Fatal("struct and equivalent map have different params digests")
	}
}

func TestDigestText(t *testing.T) {
	d := sha256.Sum256([]byte("x"))
	txt, _ := ledger.Digest(d).MarshalText()
	var back ledger.Digest
	if err := back.UnmarshalText(txt); err != nil || back != ledger.Digest(d) {
		t.Fatalf("round trip: %s %v", back, err)
	}
	for _, bad := range []string{"", "zz", strings.Repeat("g", 64)} {
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Fatalf("UnmarshalText(%q) accepted", bad)
		}
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		wantErr string
		want    ledger.Config
	}{
		{"defaults", nil, "", ledger.Config{Driver: "sqlite", SQLitePath: ".iru/ledger.db", AppRole: "iru_ledger_app"}},
		{"postgres", []string{"IRU_LEDGER_DRIVER=postgres", "IRU_LEDGER_DSN=postgres://u@h/db"}, "",
			ledger.Config{Driver: "postgres", DSN: "postgres://u@h/db", SQLitePath: ".iru/ledger.db", AppRole: "iru_ledger_app"}},
		{"postgres without dsn", []string{"IRU_LEDGER_DRIVER=postgres"}, "IRU_LEDGER_DSN: required", ledger.Config{}},
		{"unknown driver", []string{"IRU_LEDGER_DRIVER=mysql"}, `IRU_LEDGER_DRIVER="mysql"`, ledger.Config{}},
		{"bad role", []string{"IRU_LEDGER_APP_ROLE=Robert'); DROP"}, "IRU_LEDGER_APP_ROLE", ledger.Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c ledger.Config
			err := config.LoadFrom(&c, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c != tt.want {
				t.Fatalf("Load = %+v, %v; want %+v", c, err, tt.want)
			}
		})
	}
	// The DSN is a secret: Describe marks it so the binaries never log it.
	fields, err := config.Describe(&ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if f.Doc == "" {
			t.Errorf("%s has no doc", f.Name)
		}
		if f.Name == "IRU_LEDGER_DSN" && !f.Secret {
			t.Error("IRU_LEDGER_DSN is not marked secret")
		}
	}
}
