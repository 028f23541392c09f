// Package codec encrypts every Temporal payload of IRU Responder with
// AES-256-GCM before it leaves the process, so workflow histories hold no
// alert details, credentials or evidence in clear.
//
// [Codec] is a converter.PayloadCodec: each payload is proto-marshalled and
// sealed with the current data key of a [KeyRing], and the result carries
// the metadata encoding=binary/encrypted and encryption-key-id=<id>. The
// data keys are AES-256 keys generated in process and persisted only
// wrapped by the HSM key-encryption key ([keys.Manager]) in a
// [FileKeyStore]. [NewServer] is the codec server that lets the Temporal
// CLI and Web UI show decrypted payloads to authenticated users.
package codec

import (
	"crypto/rand"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

const (
	// MetadataEncoding is the payload metadata key of the encoding.
	MetadataEncoding = converter.MetadataEncoding
	// EncodingEncrypted is the encoding of payloads sealed by [Codec].
	EncodingEncrypted = "binary/encrypted"
	// MetadataEncryptionKeyID is the payload metadata key naming the data
	// key that sealed the payload.
	MetadataEncryptionKeyID = "encryption-key-id"

	nonceSize = 12
)

// ErrDecrypt is returned when a payload fails authentication: it was
// modified, or sealed with another key under the same id.
var ErrDecrypt = errors.New("payload failed authentication (tampered, or sealed with another key)")

// Codec encrypts and decrypts payloads with a [KeyRing].
type Codec struct {
	ring *KeyRing
}

var _ converter.PayloadCodec = (*Codec)(nil)

// NewCodec returns the payload codec over ring.
func NewCodec(ring *KeyRing) *Codec { return &Codec{ring: ring} }

// NewDataConverter returns the data converter without HTML escaping
// ([NewPlainDataConverter]) wrapped with the encrypting codec; set it as
// client.Options.DataConverter in every worker, starter and API client.
func NewDataConverter(ring *KeyRing) converter.DataConverter {
	return converter.NewCodecDataConverter(NewPlainDataConverter(), NewCodec(ring))
}

// aad binds the ciphertext to its metadata, so a payload cannot be
// relabelled with another key id or encoding.
func aad(keyID string) []byte { return []byte(EncodingEncrypted + "\x00" + keyID) }

// Encode implements converter.PayloadCodec.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	id, aead := c.ring.encrypter()
	if aead == nil {
		return nil, errors.New("codec: encode: the key ring has no current key")
	}
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: encode payload %d: marshal: %w", i, err)
		}
		buf := make([]byte, nonceSize, nonceSize+len(plain)+aead.Overhead())
		if _, err := rand.Read(buf); err != nil {
			return nil, fmt.Errorf("codec: encode payload %d: nonce: %w", i, err)
		}
		data := aead.Seal(buf, buf[:nonceSize], plain, aad(id))
		clear(plain)
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				MetadataEncoding:        []byte(EncodingEncrypted),
				MetadataEncryptionKeyID: []byte(id),
			},
			Data: data,
		}
	}
	return out, nil
}

// Decode implements converter.PayloadCodec. Payloads not encoded by the
// codec pass through unchanged.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataEncryptionKeyID])
		if id == "" {
			return nil, fmt.Errorf("codec: decode payload %d: no %s metadata: %w", i, MetadataEncryptionKeyID, ErrUnknownDataKey)
		}
		aead, err := c.ring.decrypter(id)
		if err != nil {
			return nil, fmt.Errorf("codec: decode payload %d: %w", i, err)
		}
		data := p.GetData()
		if len(data) < nonceSize+aead.Overhead() {
			return nil, fmt.Errorf("codec: decode payload %d with key %s: %d bytes is too short: %w", i, id, len(data), ErrDecrypt)
		}
		plain, err := aead.Open(nil, data[:nonceSize], data[nonceSize:], aad(id))
		if err != nil {
			return nil, fmt.Errorf("codec: decode payload %d with key %s: %w", i, id, ErrDecrypt)
		}
		inner := &commonpb.Payload{}
		if err := proto.Unmarshal(plain, inner); err != nil {
			return nil, fmt.Errorf("codec: decode payload %d with key %s: unmarshal: %w", i, id, err)
		}
		out[i] = inner
	}
	return out, nil
}
