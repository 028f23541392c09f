package sharedstate

import (
	"context"
	"encoding/json"

	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/keys"
)

// codecKeysTimeout bounds one call of the codec key store (its interface
// has no context: the key ring calls it while it reloads).
const codecKeysTimeout = 10 * time.Second

// CodecKeys keeps the payload codec's data keys (wrapped by the HSM KEK,
// never in clear) in the shared database, so that every API server and
// worker encrypts and decrypts with the same keys: a payload one process
// wrote, any other reads. It implements [codec.KeyStore].
type CodecKeys struct{ s *Store }

var _ codec.KeyStore = CodecKeys{}

// CodecKeys returns the codec key store of the shared state.
func (s *Store) CodecKeys() CodecKeys { return CodecKeys{s} }

// List implements [codec.KeyStore]: every key, oldest first.
func (k CodecKeys) List() ([]codec.StoredDataKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), codecKeysTimeout)
	defer cancel()
	rows, err := k.s.pool.Query(ctx, `SELECT id, wrapped, created FROM `+k.s.t("codec_keys")+` ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("sharedstate: list codec keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (codec.StoredDataKey, error) {
		var d codec.StoredDataKey
		var w []byte
		if err := r.Scan(&d.ID, &w, &d.Created); err != nil {
			return d, err
		}
		return d, json.Unmarshal(w, &d.Wrapped)
	})
	if err != nil {
		return nil, fmt.Errorf("sharedstate: list codec keys: %w", err)
	}
	return out, nil
}

// Add implements [codec.KeyStore]; it refuses an id already stored.
func (k CodecKeys) Add(d codec.StoredDataKey) error {
	if err := codec.CheckDataKeyID(d.ID); err != nil {
		return err
	}
	w, err := json.Marshal(d.Wrapped)
	if err != nil {
		return fmt.Errorf("sharedstate: encode codec key %s: %w", d.ID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), codecKeysTimeout)
	defer cancel()
	tag, err := k.s.pool.Exec(ctx, `INSERT INTO `+k.s.t("codec_keys")+` (id, wrapped, created) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
		d.ID, w, d.Created.UTC())
	if err != nil {
		return fmt.Errorf("sharedstate: add codec key %s: %w", d.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("sharedstate: add codec key %s: already stored", d.ID)
	}
	return nil
}

// StaleWrappedKeys implements [keys.WrappedKeyStore]; the reference of a
// key is its id.
func (k CodecKeys) StaleWrappedKeys(ctx context.Context, currentKEK string, limit int) ([]keys.StoredKey, error) {
	rows, err := k.s.pool.Query(ctx, `SELECT id, wrapped FROM `+k.s.t("codec_keys")+` WHERE wrapped->>'key_id' <> $1 ORDER BY created, id LIMIT $2`,
		currentKEK, limit)
	if err != nil {
		return nil, fmt.Errorf("sharedstate: stale codec keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keys.StoredKey, error) {
		var sk keys.StoredKey
		var w []byte
		if err := r.Scan(&sk.Ref, &w); err != nil {
			return sk, err
		}
		return sk, json.Unmarshal(w, &sk.Wrapped)
	})
	if err != nil {
		return nil, fmt.Errorf("sharedstate: stale codec keys: %w", err)
	}
	return out, nil
}

// ReplaceWrappedKey implements [keys.WrappedKeyStore]: the row changes
// only if it still holds old.
func (k CodecKeys) ReplaceWrappedKey(ctx context.Context, ref string, old, updated keys.Wrapped) error {
	ow, err := json.Marshal(old)
	if err != nil {
		return fmt.Errorf("sharedstate: encode codec key %s: %w", ref, err)
	}
	nw, err := json.Marshal(updated)
	if err != nil {
		return fmt.Errorf("sharedstate: encode codec key %s: %w", ref, err)
	}
	tag, err := k.s.pool.Exec(ctx, `UPDATE `+k.s.t("codec_keys")+` SET wrapped = $3 WHERE id = $1 AND wrapped = $2::jsonb`, ref, ow, nw)
	if err != nil {
		return fmt.Errorf("sharedstate: replace codec key %s: %w", ref, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("sharedstate: replace codec key %s: %w", ref, keys.ErrWrappedKeyChanged)
	}
	return nil
}
