package spool

// The on-disk format: CRC-framed records of one request's items.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// readFrame reads one frame; io.EOF at a clean end, another error for a
// short or corrupt frame.
func readFrame(r io.Reader) (payload []byte, n int64, err error) {
	var head [frameHead]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if err == io.EOF {
			return nil, 0, io.EOF
		}
		return nil, 0, fmt.Errorf("short frame header: %w", err)
	}
	size := binary.LittleEndian.Uint32(head[:4])
	if size > maxFrame {
		return nil, 0, fmt.Errorf("frame length %d too large", size)
	}
	payload = make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, 0, fmt.Errorf("short frame: %w", err)
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(head[4:]) {
		return nil, 0, errors.New("frame checksum mismatch")
	}
	return payload, int64(frameHead) + int64(size), nil
}

func appendFrame(buf, payload []byte) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(payload, castagnoli))
	return append(buf, payload...)
}

// encodeRecord writes seq, the item count, each item's key and data, and
// then the owner (of the first item) when there is one: records written
// before owners existed end after the items and decode with no owner.
func encodeRecord(buf []byte, seq uint64, items []Item) []byte {
	buf = binary.LittleEndian.AppendUint64(buf, seq)
	buf = binary.AppendUvarint(buf, uint64(len(items)))
	for _, it := range items {
		buf = binary.AppendUvarint(buf, uint64(len(it.Key)))
		buf = append(buf, it.Key...)
		buf = binary.AppendUvarint(buf, uint64(len(it.Data)))
		buf = append(buf, it.Data...)
	}
	if len(items) > 0 && items[0].Owner != "" {
		buf = binary.AppendUvarint(buf, uint64(len(items[0].Owner)))
		buf = append(buf, items[0].Owner...)
	}
	return buf
}

func decodeRecord(b []byte) (uint64, []Item, error) {
	if len(b) < 8 {
		return 0, nil, errors.New("short record")
	}
	seq := binary.LittleEndian.Uint64(b)
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return 0, nil, errors.New("bad item count")
	}
	b = b[k:]
	items := make([]Item, 0, n)
	field := func() ([]byte, error) {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errors.New("bad field length")
		}
		v := b[k : k+int(l)]
		b = b[k+int(l):]
		return v, nil
	}
	for range n {
		key, err := field()
		if err != nil {
			return 0, nil, err
		}
		data, err := field()
		if err != nil {
			return 0, nil, err
		}
		items = append(items, Item{Key: string(key), Data: slices.Clone(data)})
	}
	if len(items) == 0 {
		return 0, nil, errors.New("record without items")
	}
	if len(b) != 0 {
		owner, err := field()
		if err != nil {
			return 0, nil, fmt.Errorf("owner: %w", err)
		}
		if len(b) != 0 {
			return 0, nil, errors.New("trailing bytes in record")
		}
		for i := range items {
			items[i].Owner = string(owner)
		}
	}
	return seq, items, nil
}
