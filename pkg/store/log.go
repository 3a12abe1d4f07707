package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The log's layout. A header, then records, each one transaction:
//
//	header:  "crid-log" | version (u32 LE) | 0 (u32)
//	record:  length (u32 LE) | CRC-32C of the payload (u32 LE) | payload
//	payload: ops, each: kind (1 put, 2 delete) | bucket | key [| value]
//	         with each string a uvarint length and its bytes
//
// The file is grown in zeroed chunks ahead of the records, so a commit
// overwrites bytes the file already has and its fdatasync need not write
// the inode: a length of zero is where the records end. A record cut
// short by a crash fails its length or its CRC, and ends the log there.
const (
	logMagic   = "crid-log"
	logVersion = 1
	headerSize = 16
	frameSize  = 8 // length and CRC
	// maxRecord bounds one record: far above any transaction crid makes
	// (a pull's image and layers), far below what a torn length could
	// claim.
	maxRecord = 64 << 20
)

const (
	opPut    = 1
	opDelete = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32Of(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// op is one change of a transaction.
type op struct {
	kind        byte
	bucket, key string
	value       []byte
}

// logHeader is the first headerSize bytes of a log.
func logHeader() []byte {
	h := make([]byte, headerSize)
	copy(h, logMagic)
	binary.LittleEndian.PutUint32(h[8:], logVersion)
	return h
}

// encodeRecord frames ops as one record, and says where in it each put's
// value starts.
func encodeRecord(ops []op) (rec []byte, valueAt []int) {
	var p []byte
	p = append(p, make([]byte, frameSize)...)
	valueAt = make([]int, len(ops))
	for i, o := range ops {
		p = append(p, o.kind)
		p = binary.AppendUvarint(p, uint64(len(o.bucket)))
		p = append(p, o.bucket...)
		p = binary.AppendUvarint(p, uint64(len(o.key)))
		p = append(p, o.key...)
		if o.kind == opPut {
			p = binary.AppendUvarint(p, uint64(len(o.value)))
			valueAt[i] = len(p)
			p = append(p, o.value...)
		}
	}
	binary.LittleEndian.PutUint32(p[0:], uint32(len(p)-frameSize))
	binary.LittleEndian.PutUint32(p[4:], crc32Of(p[frameSize:]))
	return p, valueAt
}

// errCorrupt is a record whose CRC holds but whose payload does not
// decode: not a crash's torn tail but a damaged file.
var errCorrupt = errors.New("corrupt record")

// replay reads a log's records in order and calls apply for each op, with
// the offset in data of a put's value. It returns where the records end:
// the first zero length, or the first record a crash cut short (torn:
// true, the bytes from there on are not zero).
func replay(data []byte, apply func(o op, valueOff int64)) (end int64, torn bool, err error) {
	if len(data) < headerSize || string(data[:len(logMagic)]) != logMagic {
		return 0, false, errors.New("not a crid log (bad header)")
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != logVersion {
		return 0, false, fmt.Errorf("log version %d is not %d: run the crid that wrote it, or a newer one", v, logVersion)
	}
	off := int64(headerSize)
	for {
		rest := data[off:]
		if len(rest) < frameSize {
			return off, !allZero(rest), nil
		}
		n := int64(binary.LittleEndian.Uint32(rest))
		if n == 0 {
			return off, !allZero(rest), nil
		}
		if n > maxRecord || n > int64(len(rest))-frameSize {
			return off, true, nil
		}
		payload := rest[frameSize : frameSize+n]
		if crc32Of(payload) != binary.LittleEndian.Uint32(rest[4:]) {
			return off, true, nil
		}
		ops, at, err := decodePayload(payload)
		if err != nil {
			return off, false, fmt.Errorf("record at offset %d: %w", off, err)
		}
		for i, o := range ops {
			apply(o, off+frameSize+int64(at[i]))
		}
		off += frameSize + n
	}
}

// decodePayload reads a record's ops; values alias payload.
func decodePayload(p []byte) ([]op, []int, error) {
	var ops []op
	var at []int
	pos := 0
	str := func() ([]byte, bool) {
		n, w := binary.Uvarint(p[pos:])
		if w <= 0 || n > uint64(len(p)-pos-w) {
			return nil, false
		}
		pos += w
		s := p[pos : pos+int(n)]
		pos += int(n)
		return s, true
	}
	for pos < len(p) {
		o := op{kind: p[pos]}
		pos++
		if o.kind != opPut && o.kind != opDelete {
			return nil, nil, fmt.Errorf("op %d: %w", o.kind, errCorrupt)
		}
		b, ok1 := str()
		k, ok2 := str()
		if !ok1 || !ok2 {
			return nil, nil, fmt.Errorf("truncated op: %w", errCorrupt)
		}
		o.bucket, o.key = string(b), string(k)
		valueAt := 0
		if o.kind == opPut {
			v, ok := str()
			if !ok {
				return nil, nil, fmt.Errorf("truncated value: %w", errCorrupt)
			}
			valueAt = pos - len(v)
			o.value = v
		}
		ops = append(ops, o)
		at = append(at, valueAt)
	}
	return ops, at, nil
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}
