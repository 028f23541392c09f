package objectstore

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// TestComposePolicyIsThePlatformPolicy: the compose stack's S3 user
// (deploy/minio/evidence-policy.json) gets exactly the policy the tests and
// the cluster mode give the platform.
func TestComposePolicyIsThePlatformPolicy(t *testing.T) {
	b, err := os.ReadFile("../../deploy/minio/evidence-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var file, code any
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(PlatformPolicy(DefaultBucket)), &code); err != nil {
		t.Fatalf("PlatformPolicy is not JSON: %v", err)
	}
	if !reflect.DeepEqual(file, code) {
		t.Fatalf("deploy/minio/evidence-policy.json differs from PlatformPolicy:\nfile %v\ncode %v", file, code)
	}
}
