package ledger

import "context"

// InsertBatch seals the entries of rs into one chain from seq 1 and stores
// them through the group commit's batch path alone (one transaction, no
// fallback to one-by-one appends).
func InsertBatch(ctx context.Context, s Store, rs []AppendRequest) error {
	bs, ok := s.(batchStore)
	if !ok {
		return ErrInvalid
	}
	var prev Digest
	es := make([]Entry, 0, len(rs))
	for _, r := range rs {
		e, err := r.entry(r.Time)
		if err != nil {
			return err
		}
		e = e.seal(prev)
		prev = e.Hash
		es = append(es, e)
	}
	return bs.insertAll(ctx, es)
}
