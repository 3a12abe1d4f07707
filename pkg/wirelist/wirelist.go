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
//
// A response whose field holds one message (ContainerStatusResponse's
// status) is filled the same way by FillOne: one entry of a repeated
// field and a field holding one message are the same bytes on the wire.
package wirelist

import (
	"fmt"
	"slices"
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
	list  bool                  // the field is repeated: Fill; else FillOne
	msg   func(P) proto.Message // a record's entry

	mu   sync.Mutex
	byID map[string]*entry[P]
	gen  uint64 // counts the lists of every record
	// pruned is how many entries FillOne's last pruning kept.
	pruned int
	// The last list's entries, and its bytes: they are never changed,
	// only replaced, and a response may hold them.
	last    []*entry[P]
	lastRaw []byte
	// lastAll is the records the last list was made from when it kept
	// every one (nil when it was filtered).
	lastAll []P
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
	return newEntries(resp, field, true, msg)
}

// NewOne is New for a field that holds one message, filled by FillOne.
func NewOne[P Record](resp proto.Message, field protoreflect.Name, msg func(P) proto.Message) *Entries[P] {
	return newEntries(resp, field, false, msg)
}

func newEntries[P Record](resp proto.Message, field protoreflect.Name, list bool, msg func(P) proto.Message) *Entries[P] {
	fd := resp.ProtoReflect().Descriptor().Fields().ByName(field)
	if fd == nil || fd.IsList() != list || fd.Kind() != protoreflect.MessageKind {
		kind := "message field"
		if list {
			kind = "repeated message field"
		}
		panic(fmt.Sprintf("wirelist: %s has no %s %s", resp.ProtoReflect().Descriptor().FullName(), kind, field))
	}
	return &Entries[P]{field: fd.Number(), list: list, msg: msg, byID: map[string]*entry[P]{}}
}

// Fill sets into resp (its unknown fields) the entries of the records
// of recs that keep keeps (every one when keep is nil), in order. recs are
// every record there is: the entries of IDs not among them are dropped.
// An entry is encoded by msg when its record is one Fill has not seen
// under its ID.
func (e *Entries[P]) Fill(resp proto.Message, recs []P, keep func(P) bool) error {
	if !e.list {
		return fmt.Errorf("wirelist: Fill of a field that holds one message: FillOne it")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// The kubelet's relist asks for every container each second, mostly
	// with nothing changed: the same records as the last unfiltered list
	// are that list's bytes, without a lookup of each entry
	// (BenchmarkList/kept at 750 containers, marshal included: 65-91 µs
	// with the lookups, 32-61 without).
	if keep == nil && e.lastAll != nil && slices.Equal(recs, e.lastAll) {
		resp.ProtoReflect().SetUnknown(protoreflect.RawFields(e.lastRaw))
		return nil
	}
	e.gen++
	n := 0
	listed := make([]*entry[P], 0, len(e.last))
	for _, rec := range recs {
		en := e.entry(rec)
		en.gen = e.gen
		if keep != nil && !keep(rec) {
			continue
		}
		if err := e.encode(en); err != nil {
			return err
		}
		listed = append(listed, en)
		n += len(en.wire)
	}
	if len(e.byID) > len(recs) {
		for k, en := range e.byID {
			if en.gen != e.gen {
				delete(e.byID, k)
			}
		}
	}
	// The kubelet's relist asks every second for the same list, mostly
	// unchanged: the same entries in the same order are the last
	// answer's bytes, not copied again (190-290 KB at 750 containers).
	if !slices.Equal(listed, e.last) || e.lastRaw == nil {
		raw := make([]byte, 0, n)
		for _, en := range listed {
			raw = append(raw, en.wire...)
		}
		e.last, e.lastRaw = listed, raw
	}
	e.lastAll = nil
	if keep == nil {
		e.lastAll = append(make([]P, 0, len(recs)+1), recs...) // never nil
	}
	resp.ProtoReflect().SetUnknown(protoreflect.RawFields(e.lastRaw))
	return nil
}

// FillOne sets into resp (its unknown fields) rec's entry alone, for a
// field that holds one message. all lists every record there is: when
// the entries have doubled since FillOne last dropped those of gone or
// changed records, it drops them again, so churn on the node cannot grow
// them and a status call pays for the pruning once in many.
func (e *Entries[P]) FillOne(resp proto.Message, rec P, all func() []P) error {
	if e.list {
		return fmt.Errorf("wirelist: FillOne of a repeated field: Fill it")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	en := e.entry(rec)
	if err := e.encode(en); err != nil {
		return err
	}
	// Capped at its length: an append to resp's unknown fields copies.
	resp.ProtoReflect().SetUnknown(protoreflect.RawFields(en.wire[:len(en.wire):len(en.wire)]))
	if len(e.byID) >= 2*e.pruned+pruneFloor {
		current := map[P]bool{}
		for _, r := range all() {
			current[r] = true
		}
		for k, en := range e.byID {
			if !current[en.rec] {
				delete(e.byID, k)
			}
		}
		e.pruned = len(e.byID)
	}
	return nil
}

// pruneFloor is how many entries FillOne keeps before it first prunes.
const pruneFloor = 64

// entry is rec's entry, new (not encoded yet) if rec is a record not seen
// under its ID: a new record, or a changed one. The caller holds mu.
func (e *Entries[P]) entry(rec P) *entry[P] {
	k := rec.RecordID()
	en := e.byID[k]
	if en == nil || en.rec != rec {
		en = &entry[P]{rec: rec}
		e.byID[k] = en
	}
	return en
}

// encode gives en its wire form, once. The caller holds mu.
func (e *Entries[P]) encode(en *entry[P]) error {
	if en.wire != nil {
		return nil
	}
	b, err := proto.Marshal(e.msg(en.rec))
	if err != nil {
		return fmt.Errorf("encode the entry of %s: %w", en.rec.RecordID(), err)
	}
	w := make([]byte, 0, protowire.SizeTag(e.field)+protowire.SizeBytes(len(b)))
	en.wire = protowire.AppendBytes(protowire.AppendTag(w, e.field, protowire.BytesType), b)
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
