// Package wirelist assembles the CRI's list responses from entries kept
// encoded, one per record, as the Kubernetes API server's watch cache
// keeps objects serialized: the kubelet relists every second, and a
// ListContainers of 750 containers built 750 messages and marshalled
// them (about 1.1 ms of CPU and 760 KB of garbage a call here). A record
// that did not change since the last list is not encoded again.
//
// A record is known by its pointer: the records.Set never changes a
// record it holds in place (a Put stores a new copy), so a new pointer
// under an ID is a changed record, and an entry cached for the old one is
// stale.
//
// The entries go into the response as its unknown fields: protobuf
// writes those out byte for byte, and an entry encoded as the list's
// repeated field (its tag, its length, the message) is on the wire what
// the field holding the message would be. A client decodes the field; in
// crid's own process, the response's Go value has the field empty
// (Decode gives it back).
package wirelist

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Record is what a list's entry is made from: a record pointer, never
// changed in place.
type Record interface {
	comparable
	RecordID() string
}

// Entries are the encoded entries of one list response's repeated field,
// by record ID.
type Entries[P Record] struct {
	field protowire.Number
	msg   func(P) proto.Message // a record's entry

	mu   sync.Mutex
	byID map[string]*entry[P]
	gen  uint64 // counts the lists of every record
}

type entry[P Record] struct {
	rec  P
	wire []byte // the field's tag and length, then the message
	gen  uint64 // the last list of every record that had it
}

// New returns no entries for the repeated message field of resp's type
// named field, whose entry for a record msg builds. A field of another
// name or kind is a bug: New panics.
func New[P Record](resp proto.Message, field protoreflect.Name, msg func(P) proto.Message) *Entries[P] {
	fd := resp.ProtoReflect().Descriptor().Fields().ByName(field)
	if fd == nil || !fd.IsList() || fd.Kind() != protoreflect.MessageKind {
		panic(fmt.Sprintf("wirelist: %s has no repeated message field %s", resp.ProtoReflect().Descriptor().FullName(), field))
	}
	return &Entries[P]{field: fd.Number(), msg: msg, byID: map[string]*entry[P]{}}
}

// Fill sets into resp (its unknown fields) the entries of the records
// of recs that keep keeps, in order. recs are every record there is: the
// entries of IDs not among them are dropped. An entry is encoded by msg
// when its record is one Fill has not seen under its ID.
func (e *Entries[P]) Fill(resp proto.Message, recs []P, keep func(P) bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	n := 0
	var wires [][]byte
	for _, rec := range recs {
		k := rec.RecordID()
		en := e.byID[k]
		if en == nil || en.rec != rec { // a new record, or a changed one
			en = &entry[P]{rec: rec}
			e.byID[k] = en
		}
		en.gen = e.gen
		if !keep(rec) {
			continue
		}
		if en.wire == nil {
			b, err := proto.Marshal(e.msg(rec))
			if err != nil {
				return fmt.Errorf("encode the list entry of %s: %w", k, err)
			}
			w := make([]byte, 0, protowire.SizeTag(e.field)+protowire.SizeBytes(len(b)))
			en.wire = protowire.AppendBytes(protowire.AppendTag(w, e.field, protowire.BytesType), b)
		}
		wires = append(wires, en.wire)
		n += len(en.wire)
	}
	if len(e.byID) > len(recs) {
		for k, en := range e.byID {
			if en.gen != e.gen {
				delete(e.byID, k)
			}
		}
	}
	raw := make([]byte, 0, n)
	for _, w := range wires {
		raw = append(raw, w...)
	}
	resp.ProtoReflect().SetUnknown(protoreflect.RawFields(raw))
	return nil
}

// Len is how many entries are kept.
func (e *Entries[P]) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.byID)
}

// Decode gives resp, filled by Fill, the value a client decodes: its
// unknown fields parsed into the fields they are.
func Decode(resp proto.Message) error {
	b, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	proto.Reset(resp)
	return proto.Unmarshal(b, resp)
}
