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
	"crypto/sha256"
	"encoding/hex"
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

// ErrPlaintext is returned by [Codec.Decode] for a payload that is not
// encrypted: every client of the platform encrypts, so a plaintext payload
// (an alert, a decision, an abort) comes from a client that holds no key,
// and the platform does not act on it.
var ErrPlaintext = errors.New("refusing an unencrypted payload (the platform's clients encrypt every payload)")

// Codec encrypts and decrypts payloads with a [KeyRing].
type Codec struct {
	ring *KeyRing
	// plain lets unencrypted payloads through Decode (display only).
	plain bool
	// refused, if set, hears of every unencrypted payload Decode refused.
	refused func(Refusal)
}

// Refusal describes an unencrypted payload the codec refused.
type Refusal struct {
	// Encoding is the payload's encoding metadata (json/plain, …).
	Encoding string
	// Size is the payload's data size; SHA256 its data's hex digest.
	Size   int
	SHA256 string
}

// NewObservedDataConverter is [NewDataConverter] that calls refused for
// every unencrypted payload it refuses (the worker writes them to the
// ledger: someone without the key talked to the platform).
func NewObservedDataConverter(ring *KeyRing, refused func(Refusal)) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), &Codec{ring: ring, refused: refused})
}

var _ converter.PayloadCodec = (*Codec)(nil)

// NewCodec returns the payload codec over ring. Its Decode refuses
// unencrypted payloads ([ErrPlaintext]): workers, the API server and the
// starter decode with it, so nothing sent in clear is ever acted on.
func NewCodec(ring *KeyRing) *Codec { return &Codec{ring: ring} }

// NewDisplayCodec returns the codec for the codec server, which only shows
// payloads to authenticated people: its Decode passes unencrypted payloads
// through unchanged, so the Web UI can still show what an outside client
// sent (and the workflow refused).
func NewDisplayCodec(ring *KeyRing) *Codec { return &Codec{ring: ring, plain: true} }

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
// codec are refused ([ErrPlaintext]), unless this is a display codec
// ([NewDisplayCodec]) which passes them through unchanged.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if enc := string(p.GetMetadata()[MetadataEncoding]); enc != EncodingEncrypted {
			if !c.plain {
				if c.refused != nil {
					sum := sha256.Sum256(p.GetData())
					c.refused(Refusal{Encoding: enc, Size: len(p.GetData()), SHA256: hex.EncodeToString(sum[:])})
				}
				return nil, fmt.Errorf("codec: decode payload %d (encoding %q): %w", i, enc, ErrPlaintext)
			}
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
