package pve

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// startSim starts a simulator on a free loopback port for one test.
func startSim(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatalf("new simulator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		tb.Fatalf("start simulator: %v", err)
	}
	tb.Cleanup(func() {
		cancel()
		s.Close()
	})
	return s
}

// responder returns a go-proxmox client using the full-privilege token.
func responder(s *Server, extra ...proxmox.Option) *proxmox.Client {
	opts := append([]proxmox.Option{
		proxmox.WithAPIToken(LabResponderTokenID, LabResponderTokenSecret),
		proxmox.WithHTTPClient(s.HTTPClient()),
	}, extra...)
	return proxmox.NewClient(s.URL(), opts...)
}

func auditor(s *Server) *proxmox.Client {
	return proxmox.NewClient(s.URL(),
		proxmox.WithAPIToken(LabAuditTokenID, LabAuditTokenSecret),
		proxmox.WithHTTPClient(s.HTTPClient()))
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// rawResp is a decoded raw HTTP answer.
type rawResp struct {
	status int
	reason string
	body   map[string]any
	raw    string
}

// raw sends a request with the responder token unless headers override it.
func raw(tb testing.TB, s *Server, method, path, contentType, body string, headers map[string]string) rawResp {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(s.URL(), "/api2/json")+path, rd)
	if err != nil {
		tb.Fatalf("build request: %v", err)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+LabResponderTokenID+"="+LabResponderTokenSecret)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := s.HTTPClient().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	out := rawResp{status: res.StatusCode, reason: strings.TrimSpace(strings.TrimPrefix(res.Status, http.StatusText(0))), raw: string(b)}
	_, out.reason, _ = strings.Cut(res.Status, " ")
	_ = json.Unmarshal(b, &out.body)
	return out
}

// waitTask waits for a go-proxmox task with a short poll interval.
func waitTask(tb testing.TB, ctx context.Context, task *proxmox.Task) {
	tb.Helper()
	if task == nil {
		tb.Fatalf("nil task")
	}
	if err := task.Wait(ctx, 5*time.Millisecond, 10*time.Second); err != nil {
		tb.Fatalf("wait %s: %v", task.UPID, err)
	}
}
