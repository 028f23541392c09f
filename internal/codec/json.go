package codec

import (
	"bytes"
	"encoding/json"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// JSONPayloadConverter is the SDK's JSON payload converter without HTML
// escaping: json.Marshal writes '<', '>' and '&' as six-byte \u003c
// escapes, so an alert whose labels are full of them grows six-fold on its
// way into a payload (over the server's blob limit). Payloads are read as
// JSON only (and are ciphertext in history), never embedded in HTML, so
// escaping buys nothing. Decoding is the SDK's.
type JSONPayloadConverter struct {
	converter.JSONPayloadConverter
}

// ToPayload implements converter.PayloadConverter.
func (c *JSONPayloadConverter) ToPayload(value any) (*commonpb.Payload, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(value); err != nil {
		return nil, fmt.Errorf("%w: %v", converter.ErrUnableToEncode, err)
	}
	data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingJSON)}, Data: data}, nil
}

// NewPlainDataConverter is the SDK's default data converter with
// [JSONPayloadConverter] for JSON values; [NewDataConverter] wraps it with
// the encrypting codec.
func NewPlainDataConverter() converter.DataConverter {
	return converter.NewCompositeDataConverter(
		converter.NewNilPayloadConverter(),
		converter.NewByteSlicePayloadConverter(),
		converter.NewProtoJSONPayloadConverter(),
		converter.NewProtoPayloadConverter(),
		&JSONPayloadConverter{},
	)
}
