package proxmox

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/keys"
)

// The quarantine record lives in the container's description, which anyone
// with VM.Config.Options on the container can edit. pve.isolate signs it
// with the HSM signing key (the private key never leaves the HSM), bound
// to the container's vmid; pve.unisolate, pve.isolate (continuing) and
// pve.restore act on a record only when its signature verifies. A record
// that was edited, forged, copied from another container or left unsigned
// is refused (Conflict): nothing is restored and the container stays
// isolated.

// recordSigPrefix starts the description line holding the record's signature.
const recordSigPrefix = "iru-quarantine-sig:v1:"

// recordDomain separates quarantine-record signatures from every other use
// of the signing key.
const recordDomain = "iru-quarantine-record/v1"

// RecordKey signs and verifies quarantine records; [keys.Manager] is one.
type RecordKey interface {
	Sign(ctx context.Context, digest []byte) (keys.Signature, error)
	Verify(ctx context.Context, digest []byte, sig keys.Signature) error
}

// WithRecordKey sets the key that authenticates quarantine records
// (required by [New]).
func WithRecordKey(k RecordKey) Option {
	return func(o *options) { o.recordKey = k }
}

// recordDigest is what the signature covers: the domain, the container
// and the encoded record.
func recordDigest(vmid int, enc string) []byte {
	sum := sha256.Sum256([]byte(recordDomain + "\x00" + strconv.Itoa(vmid) + "\x00" + enc))
	return sum[:]
}

// signedDescription encodes and signs rec for the call's container.
func (x *call) signedDescription(ctx context.Context, rec *quarantineRecord) (string, error) {
	if x.a.recordKey == nil {
		return "", final(activities.ErrTypePrecondition, x.what()+": no key to sign the quarantine record")
	}
	enc, err := encodeRecord(rec)
	if err != nil {
		return "", final(activities.ErrTypePrecondition, x.what()+": "+err.Error())
	}
	sig, err := x.a.recordKey.Sign(ctx, recordDigest(x.ct.VMID, enc))
	if err != nil {
		return "", fmt.Errorf("%s: sign the quarantine record: %w", x.what(), err)
	}
	js, err := json.Marshal(sig)
	if err != nil {
		return "", fmt.Errorf("%s: encode the record signature: %w", x.what(), err)
	}
	d, err := recordDescription(rec, enc, base64.RawURLEncoding.EncodeToString(js))
	if err != nil {
		return "", final(activities.ErrTypePrecondition, x.what()+": "+err.Error())
	}
	return d, nil
}

// trustedRecord returns the quarantine record of the container (nil if
// there is none) once its signature verifies; otherwise a final Conflict.
func (x *call) trustedRecord(ctx context.Context, st *ctState) (*quarantineRecord, error) {
	enc, sigLine := st.recordLines()
	if enc == "" {
		return nil, nil
	}
	refuse := func(why string) error {
		return final(activities.ErrTypeConflict, fmt.Sprintf(
			"%s: the quarantine record in the description %s; refusing to act on it (the container stays as it is: lift the isolation by hand from the prior state in the evidence locker)", x.what(), why))
	}
	if x.a.recordKey == nil {
		return nil, refuse("cannot be verified (no record key)")
	}
	if sigLine == "" {
		return nil, refuse("is not signed (edited or forged)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(sigLine)
	if err != nil {
		return nil, refuse("has an unreadable signature")
	}
	var sig keys.Signature
	if err := json.Unmarshal(raw, &sig); err != nil {
		return nil, refuse("has an unreadable signature")
	}
	if err := x.a.recordKey.Verify(ctx, recordDigest(x.ct.VMID, enc), sig); err != nil {
		return nil, refuse(fmt.Sprintf("fails authentication (edited, forged or copied from another container): %v", err))
	}
	rec, err := decodeRecord(enc)
	if err != nil {
		return nil, refuse("is unreadable: " + err.Error())
	}
	return rec, nil
}
