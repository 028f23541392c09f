package keys

import (
	"context"
	"fmt"

	"github.com/ThalesGroup/crypto11"
)

// KEKAttributes are the protection attributes of one KEK object, as the
// token reports them (PKCS#11 CKA_EXTRACTABLE, CKA_SENSITIVE,
// CKA_NEVER_EXTRACTABLE).
type KEKAttributes struct {
	ID               string
	Extractable      bool
	Sensitive        bool
	NeverExtractable bool
}

// KEKProtection reads the protection attributes of every KEK in the token,
// highest version first. The control check "KEK non-extractable" reads it.
func (m *Manager) KEKProtection(ctx context.Context) ([]KEKAttributes, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: KEK attributes: %w", err)
	}
	keks, err := m.listKEKs()
	if err != nil {
		return nil, err
	}
	var out []KEKAttributes
	for _, k := range keks {
		attrs, err := m.hsm.GetAttributes(k.key, []crypto11.AttributeType{crypto11.CkaExtractable, crypto11.CkaSensitive, crypto11.CkaNeverExtractable})
		if err != nil {
			return nil, fmt.Errorf("keys: read attributes of %s: %w", k.id, err)
		}
		out = append(out, KEKAttributes{ID: k.id, Extractable: boolAttr(attrs[crypto11.CkaExtractable]),
			Sensitive: boolAttr(attrs[crypto11.CkaSensitive]), NeverExtractable: boolAttr(attrs[crypto11.CkaNeverExtractable])})
	}
	return out, nil
}

// boolAttr decodes a CK_BBOOL attribute (absent: false).
func boolAttr(a *crypto11.Attribute) bool {
	return a != nil && len(a.Value) > 0 && a.Value[0] != 0
}
