package evidence

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Encrypted object format (version 1):
//
//	header  = "IRUEV1" (6 bytes) || segment size (4 bytes, big-endian) || nonce prefix (8 random bytes)
//	segment = AES-256-GCM(dek, nonce, plaintext, aad)  (plaintext ≤ segment size, + 16-byte tag)
//	nonce   = nonce prefix || segment counter (4 bytes, big-endian, from 0)
//	aad     = header || last flag (1 byte: 1 for the final segment, else 0)
//
// Every segment but the last holds exactly segment size bytes of plaintext;
// the last holds 0 to segment size bytes, so an empty object is one empty
// final segment. The counter in the nonce detects reordered, dropped or
// duplicated segments; the last flag detects truncation at a segment
// boundary (the new final segment was sealed as not-last) and extension
// (the real final segment is no longer last); the header in the AAD
// detects an edited header. Memory use is a few segments, whatever the size.
const (
	streamMagic       = "IRUEV1"
	headerLen         = len(streamMagic) + 4 + noncePrefixLen
	noncePrefixLen    = 8
	tagLen            = 16
	defaultSegment    = 64 << 10
	maxSegment        = 4 << 20
	maxSegmentCounter = 1<<32 - 1
)

// errSegment reports a segment that does not authenticate.
var errSegment = errors.New("segment does not authenticate (tampered, truncated, reordered or extended)")

func newGCM(dek []byte) (cipher.AEAD, error) {
	if len(dek) != 32 {
		return nil, fmt.Errorf("data key is %d bytes, want 32", len(dek))
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// encryptReader reads plaintext from src and yields the encrypted object.
type encryptReader struct {
	aead    cipher.AEAD
	src     *bufio.Reader
	header  []byte
	aad     []byte
	nonce   []byte
	counter uint64
	plain   []byte // segment plaintext buffer
	out     []byte // pending output (header or sealed segment)
	outBuf  []byte
	done    bool
	err     error
}

func newEncryptReader(dek []byte, src io.Reader, segment int) (*encryptReader, error) {
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	header := make([]byte, headerLen)
	copy(header, streamMagic)
	binary.BigEndian.PutUint32(header[len(streamMagic):], uint32(segment))
	if _, err := rand.Read(header[len(streamMagic)+4:]); err != nil {
		return nil, fmt.Errorf("nonce prefix: %w", err)
	}
	e := &encryptReader{
		aead:   aead,
		src:    bufio.NewReaderSize(src, 16<<10),
		header: header,
		aad:    append(append([]byte(nil), header...), 0),
		nonce:  make([]byte, aead.NonceSize()),
		plain:  make([]byte, segment),
		outBuf: make([]byte, 0, segment+tagLen),
	}
	copy(e.nonce, header[len(streamMagic)+4:])
	e.out = header
	return e, nil
}

func (e *encryptReader) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.err != nil {
			return 0, e.err
		}
		if e.done {
			return 0, io.EOF
		}
		e.sealNext()
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

// sealNext reads one segment of plaintext and seals it into e.out.
func (e *encryptReader) sealNext() {
	n, err := io.ReadFull(e.src, e.plain)
	last := false
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case err != nil:
		e.err = err
		return
	default:
		if _, perr := e.src.Peek(1); errors.Is(perr, io.EOF) {
			last = true
		} else if perr != nil {
			e.err = perr
			return
		}
	}
	if e.counter > maxSegmentCounter {
		e.err = errors.New("evidence: object too large for one stream")
		return
	}
	binary.BigEndian.PutUint32(e.nonce[noncePrefixLen:], uint32(e.counter))
	e.aad[len(e.aad)-1] = 0
	if last {
		e.aad[len(e.aad)-1] = 1
		e.done = true
	}
	e.out = e.aead.Seal(e.outBuf[:0], e.nonce, e.plain[:n], e.aad)
	e.counter++
}

// decryptReader reads an encrypted object and yields its plaintext. Any
// error in the stream is returned from Read and wraps errSegment when a
// segment does not authenticate.
type decryptReader struct {
	aead     cipher.AEAD
	src      *bufio.Reader
	aad      []byte
	nonce    []byte
	segment  int
	counter  uint64
	ct       []byte
	plain    []byte // pending plaintext
	plainBuf []byte
	sawLast  bool
	err      error
}

func newDecryptReader(dek []byte, src io.Reader) (*decryptReader, error) {
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(src, 16<<10)
	header := make([]byte, headerLen)
	if _, err := io.ReadFull(br, header); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(header[:len(streamMagic)]) != streamMagic {
		return nil, fmt.Errorf("header: not an evidence object (magic %q)", header[:len(streamMagic)])
	}
	segment := int(binary.BigEndian.Uint32(header[len(streamMagic):]))
	if segment < 1 || segment > maxSegment {
		return nil, fmt.Errorf("header: segment size %d out of range", segment)
	}
	d := &decryptReader{
		aead:     aead,
		src:      br,
		aad:      append(header, 0),
		nonce:    make([]byte, aead.NonceSize()),
		segment:  segment,
		ct:       make([]byte, segment+tagLen),
		plainBuf: make([]byte, 0, segment),
	}
	copy(d.nonce, header[len(streamMagic)+4:])
	return d, nil
}

func (d *decryptReader) Read(p []byte) (int, error) {
	for len(d.plain) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.openNext()
	}
	n := copy(p, d.plain)
	d.plain = d.plain[n:]
	return n, nil
}

func (d *decryptReader) openNext() {
	n, err := io.ReadFull(d.src, d.ct)
	last := false
	switch {
	case errors.Is(err, io.EOF):
		if d.sawLast {
			d.err = io.EOF
		} else {
			d.err = fmt.Errorf("segment %d: %w: stream ends before the final segment", d.counter, errSegment)
		}
		return
	case d.sawLast:
		d.err = fmt.Errorf("segment %d: %w: data after the final segment", d.counter, errSegment)
		return
	case errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case err != nil:
		d.err = fmt.Errorf("segment %d: %w", d.counter, err)
		return
	default:
		if _, perr := d.src.Peek(1); errors.Is(perr, io.EOF) {
			last = true
		} else if perr != nil {
			d.err = fmt.Errorf("segment %d: %w", d.counter, perr)
			return
		}
	}
	if n < tagLen || d.counter > maxSegmentCounter {
		d.err = fmt.Errorf("segment %d: %w: short segment", d.counter, errSegment)
		return
	}
	binary.BigEndian.PutUint32(d.nonce[noncePrefixLen:], uint32(d.counter))
	d.aad[len(d.aad)-1] = 0
	if last {
		d.aad[len(d.aad)-1] = 1
	}
	plain, oerr := d.aead.Open(d.plainBuf[:0], d.nonce, d.ct[:n], d.aad)
	if oerr != nil {
		d.err = fmt.Errorf("segment %d: %w", d.counter, errSegment)
		return
	}
	d.counter++
	d.sawLast = last
	d.plain = plain
	if len(plain) == 0 && last {
		d.err = io.EOF
	}
}
