//go:build localstack

package localstack

import (
	"net/http/httptest"
	"testing"

	"github.com/iru-responder/responder/internal/codec"
)

// TestLabUIMayOnlyDecode: in the lab, a local client that copies the Web
// UI's Origin header may decode (what the UI does) but not encode: it
// cannot make payloads the platform would decrypt and act on.
func TestLabUIMayOnlyDecode(t *testing.T) {
	static, err := codec.NewStaticTokenAuthenticator("0123456789abcdef0123", "codec-token")
	if err != nil {
		t.Fatal(err)
	}
	a := labUIAuthenticator{origin: "http://127.0.0.1:8233", next: static}
	for path, want := range map[string]bool{"/decode": true, "/encode": false, "/codec/encode": false} {
		r := httptest.NewRequest("POST", path, nil)
		r.RemoteAddr = "127.0.0.1:5555"
		r.Header.Set("Origin", "http://127.0.0.1:8233")
		if _, err := a.Authenticate(r); (err == nil) != want {
			t.Errorf("%s with the UI's origin: err %v, want allowed=%v", path, err, want)
		}
	}
}
