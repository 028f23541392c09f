package temporalclient

import (
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/config"
)

// TestClientOptionsCompression: calls to Temporal are not gzipped unless
// IRU_TEMPORAL_GZIP asks for it (the SDK's default, left in place then).
func TestClientOptionsCompression(t *testing.T) {
	tests := []struct {
		name     string
		gzip     bool
		wantNone bool
	}{
		{"default: no compression", false, true},
		{"IRU_TEMPORAL_GZIP=true: the SDK's gzip", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			co, err := ClientOptions(config.Temporal{Address: "127.0.0.1:7233", Namespace: "default", Gzip: tt.gzip}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, none := co.ConnectionOptions.GrpcCompression.(*client.GrpcCompressionNone)
			if none != tt.wantNone || (!tt.wantNone && co.ConnectionOptions.GrpcCompression != nil) {
				t.Errorf("GrpcCompression = %#v, want none=%v", co.ConnectionOptions.GrpcCompression, tt.wantNone)
			}
		})
	}
}
