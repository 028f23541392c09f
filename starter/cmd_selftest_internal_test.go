package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestPollCut: a cut long poll is waited out; an answer about the workflow
// (it failed, timed out, does not exist) or the caller's deadline is not.
func TestPollCut(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"stream reset", status.Error(codes.Canceled, "stream terminated by RST_STREAM with error code: CANCEL"), true},
		{"server canceled", fmt.Errorf("get: %w", serviceerror.NewCanceled("canceled")), true},
		{"frontend restarting", serviceerror.NewUnavailable("unavailable"), true},
		{"deadline", context.DeadlineExceeded, false},
		{"workflow not found", serviceerror.NewNotFound("no workflow"), false},
		{"workflow failed", errors.New("workflow execution error"), false},
		{"none", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pollCut(tt.err); got != tt.want {
				t.Errorf("pollCut(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
