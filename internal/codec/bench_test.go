package codec_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/internal/codec"
)

// BenchmarkDataConverter measures ToPayload+FromPayload of a JSON struct
// through the default converter (baseline) and through the encrypting
// codec, in the same run. Compare ns/op of the two for each size.
func BenchmarkDataConverter(b *testing.B) {
	f := newFixture(b)
	converters := []struct {
		name string
		dc   converter.DataConverter
	}{
		{"baseline", converter.GetDefaultDataConverter()},
		{"encrypted", codec.NewDataConverter(f.ring)},
	}
	for _, size := range []int{1 << 10, 64 << 10} {
		raw := make([]byte, size/2)
		if _, err := rand.Read(raw); err != nil {
			b.Fatal(err)
		}
		in := alertInput{AlertID: "a-1", Secret: hex.EncodeToString(raw)}
		for _, c := range converters {
			b.Run(fmt.Sprintf("%s/%dKiB", c.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					p, err := c.dc.ToPayload(in)
					if err != nil {
						b.Fatal(err)
					}
					var out alertInput
					if err := c.dc.FromPayload(p, &out); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCodec measures the codec alone: Encode+Decode of one payload
// that the default converter already produced.
func BenchmarkCodec(b *testing.B) {
	f := newFixture(b)
	c := codec.NewCodec(f.ring)
	for _, size := range []int{1 << 10, 64 << 10} {
		raw := make([]byte, size/2)
		if _, err := rand.Read(raw); err != nil {
			b.Fatal(err)
		}
		p, err := converter.GetDefaultDataConverter().ToPayload(alertInput{AlertID: "a-1", Secret: hex.EncodeToString(raw)})
		if err != nil {
			b.Fatal(err)
		}
		ps := []*commonpb.Payload{p}
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				enc, err := c.Encode(ps)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
