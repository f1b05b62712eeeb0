// Package cabi replaces plugin-sdk-go's C-memory helpers on triage's two
// hot paths: the result buffers extract_fields answers in, and the event
// buffers next_batch fills. The SDK's versions copy one byte per loop
// iteration and free and malloc a string buffer whenever a value is longer
// than the previous one; these copy with memmove into C buffers that only
// grow. They implement the SDK's interfaces, so the SDK's exported
// functions drive them unchanged.
package cabi

/*
#include <stdint.h>
#include <stdlib.h>

// ss_plugin_extract_field of the plugin API (plugin_api.h); the layout is
// checked in TestExtractFieldLayout.
typedef struct {
	void* res;
	uint64_t res_len;
	uint32_t field_id;
	const char* field;
	const char* arg_key;
	uint64_t arg_index;
	uint32_t arg_present;
	uint32_t ftype;
	uint32_t flist;
} cabi_extract_field;

typedef struct {
	uint32_t* start;
	uint32_t* length;
} cabi_value_offsets;
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/falcosecurity/plugin-sdk-go/pkg/ptr"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk"
)

// cBuf is C memory that only grows.
type cBuf struct {
	p   unsafe.Pointer
	cap int
}

// ensure makes room for n bytes (the old content is not kept) and returns
// the buffer, or nil when C memory is exhausted.
func (b *cBuf) ensure(n int) unsafe.Pointer {
	if n > b.cap || b.p == nil {
		if b.p != nil {
			C.free(b.p)
		}
		size := max(n, 2*b.cap, 64)
		b.p = C.malloc(C.size_t(size))
		if b.p == nil {
			b.cap = 0
			return nil
		}
		b.cap = size
	}
	return b.p
}

// mustEnsure is ensure for the value setters, which run inside Extract's
// recover: running out of C memory fails the extraction, not the host.
func (b *cBuf) mustEnsure(n int) unsafe.Pointer {
	p := b.ensure(n)
	if p == nil {
		panic(fmt.Sprintf("cabi: out of C memory (%d bytes)", n))
	}
	return p
}

func (b *cBuf) free() {
	if b.p != nil {
		C.free(b.p)
		b.p, b.cap = nil, 0
	}
}

// RequestPool is an sdk.ExtractRequestPool: one request per field ID, each
// with its own result buffers. The plugin API asks that a result stay valid
// until the next extract_fields call; here a field's first answer in a call
// stays valid until that field ID is asked for again.
//
// One call may ask for the same field ID several times (alert.field with
// two keys; Falco asks one field per call, the API allows more):
// plugin-sdk-go v0.8.3 then hands out the same request for each, so a
// request keeps one buffer per repetition within the call (see SetPtr).
type RequestPool struct {
	reqs    []*Request       // by field ID, for the IDs a plugin has
	odd     map[int]*Request // any other ID the host sends
	offsets struct {
		start, length cBuf
	}
	// last is the address of the request struct of the last SetPtr (only
	// compared, never followed; 0 = none), call counts the extract_fields
	// calls seen (see SetPtr).
	last uintptr
	call uint64
}

// maxDirectID bounds the slice of requests: IDs beyond it (no triage field
// has one) go to a map, so a bogus ID cannot make Get allocate gigabytes.
const maxDirectID = 1 << 12

// NewRequestPool returns an empty pool; give it to a plugin state with
// SetExtractRequests before plugin-sdk-go would create its own.
func NewRequestPool() *RequestPool { return &RequestPool{} }

// Get returns the request for a field ID. plugin-sdk-go calls it outside
// any recover of the plugin's, so it never panics; Extract rejects IDs that
// name no field.
func (p *RequestPool) Get(id int) sdk.ExtractRequest {
	if id < 0 || id >= maxDirectID {
		if p.odd == nil {
			p.odd = map[int]*Request{}
		}
		r := p.odd[id]
		if r == nil {
			r = &Request{pool: p}
			p.odd[id] = r
		}
		return r
	}
	for len(p.reqs) <= id {
		p.reqs = append(p.reqs, nil)
	}
	r := p.reqs[id]
	if r == nil {
		r = &Request{pool: p}
		p.reqs[id] = r
	}
	return r
}

// MakeOffsetArrayPtrs points the host's value_offsets at zeroed arrays of
// n entries owned by the pool (called by the SDK outside any recover: out
// of C memory, the host gets no offsets rather than a crash).
func (p *RequestPool) MakeOffsetArrayPtrs(offsets unsafe.Pointer, n uint32) {
	p.last = 0 // the SDK calls this first in a call: the next field starts one
	size := int(n) * 4
	start := p.offsets.start.ensure(size)
	length := p.offsets.length.ensure(size)
	o := (*C.cabi_value_offsets)(offsets)
	if start == nil || length == nil {
		o.start, o.length = nil, nil
		return
	}
	clear(unsafe.Slice((*byte)(start), size))
	clear(unsafe.Slice((*byte)(length), size))
	o.start, o.length = (*C.uint32_t)(start), (*C.uint32_t)(length)
}

// Free releases all C memory of the pool.
func (p *RequestPool) Free() {
	for _, r := range p.reqs {
		if r != nil {
			r.free()
		}
	}
	for _, r := range p.odd {
		r.free()
	}
	p.reqs, p.odd, p.last = nil, nil, 0
	p.offsets.start.free()
	p.offsets.length.free()
}

// Request is an sdk.ExtractRequest writing into C buffers of its own.
type Request struct {
	pool             *RequestPool
	req              *C.cabi_extract_field
	offStart, offLen *C.uint32_t
	call             uint64  // the pool's call in which this ID was last asked
	slot             int     // its repetition in that call: 0 first, k the k+1th
	first            cBuf    // the buffer of the first request for this ID in a call
	more             []*cBuf // more[k-1]: the buffer of repetition k
}

// maxRepeats bounds the repetitions of one field ID that one call gets
// separate buffers for.
const maxRepeats = 256

// fieldSize is sizeof(ss_plugin_extract_field).
const fieldSize = C.sizeof_cabi_extract_field

// SetPtr points the request at the host's ss_plugin_extract_field p and
// picks the buffer its value goes to.
//
// plugin-sdk-go (symbols/extract, plugin_extract_fields_sync) answers one
// call with a loop over the host's array: Get(field_id), SetPtr(&fields[i]),
// then Extract, i = 0, 1, ... So within one call each SetPtr names the
// struct right after the previous one; a SetPtr that does not starts a new
// call (and so does MakeOffsetArrayPtrs, which the SDK runs before the
// loop). A new call whose array happens to start right after the previous
// call's last struct is taken for the same call: that only keeps an older
// value alive in its own buffer, never shares one. The first request for an
// ID in a call writes into the request's first buffer, as one buffer per
// field ID did before; a repeat within the call gets a buffer of its own.
func (r *Request) SetPtr(p unsafe.Pointer) {
	r.req = (*C.cabi_extract_field)(p)
	pool, at := r.pool, uintptr(p)
	if at != pool.last+fieldSize { // last 0: never equal, page zero is no struct
		pool.call++
	}
	pool.last = at
	if r.call != pool.call {
		r.call, r.slot = pool.call, 0
		return
	}
	r.slot++
	if r.slot > maxRepeats {
		// More repeats than any real call makes: rather a host whose
		// arrays keep landing end to end. Starting over bounds the buffers.
		pool.call++
		r.call, r.slot = pool.call, 0
		return
	}
	for len(r.more) < r.slot {
		r.more = append(r.more, &cBuf{})
	}
}

// res is the buffer the current request's value goes to.
func (r *Request) res() *cBuf {
	if r.slot == 0 {
		return &r.first
	}
	return r.more[r.slot-1]
}

func (r *Request) free() {
	r.first.free()
	for _, b := range r.more {
		b.free()
	}
	r.more, r.slot = nil, 0
}

func (r *Request) SetOffsetPtrs(start, length unsafe.Pointer) {
	r.offStart, r.offLen = (*C.uint32_t)(start), (*C.uint32_t)(length)
}
func (r *Request) FieldID() uint64   { return uint64(r.req.field_id) }
func (r *Request) FieldType() uint32 { return uint32(r.req.ftype) }
func (r *Request) Field() string     { return ptr.GoString(unsafe.Pointer(r.req.field)) }
func (r *Request) ArgKey() string    { return ptr.GoString(unsafe.Pointer(r.req.arg_key)) }
func (r *Request) ArgIndex() uint64  { return uint64(r.req.arg_index) }
func (r *Request) ArgPresent() bool  { return r.req.arg_present != 0 }
func (r *Request) IsList() bool      { return r.req.flist != 0 }
func (r *Request) WantOffset() bool  { return r.offStart != nil && r.offLen != nil }

// SetValueOffset records where the value came from, if the host asked.
func (r *Request) SetValueOffset(start, length uint32) {
	if r.WantOffset() {
		*r.offStart, *r.offLen = C.uint32_t(start), C.uint32_t(length)
	}
}

// SetValue writes v as the field's result. The Go type must match the
// field type: string or []string for strings; uint64 or []uint64 (also
// time.Time, time.Duration and their lists for abstime and reltime); bool
// or []bool. Anything else panics (Extract recovers and reports it).
func (r *Request) SetValue(v any) {
	switch r.FieldType() {
	case sdk.FieldTypeCharBuf:
		switch s := v.(type) {
		case string:
			r.setStrings(nil, s)
		case []string:
			r.setStrings(s, "")
		default:
			r.badType(v)
		}
	case sdk.FieldTypeUint64, sdk.FieldTypeAbsTime, sdk.FieldTypeRelTime:
		switch n := v.(type) {
		case uint64:
			r.setU64(n)
		case []uint64:
			r.setU64s(n)
		case time.Time:
			r.setU64(uint64(n.UnixNano()))
		case time.Duration:
			r.setU64(uint64(n.Nanoseconds()))
		case []time.Time:
			out := r.u64s(len(n))
			for i, t := range n {
				out[i] = uint64(t.UnixNano())
			}
		case []time.Duration:
			out := r.u64s(len(n))
			for i, d := range n {
				out[i] = uint64(d.Nanoseconds())
			}
		default:
			r.badType(v)
		}
	case sdk.FieldTypeBool:
		switch b := v.(type) {
		case bool:
			r.u32s(1)[0] = boolU32(b)
		case []bool:
			out := r.u32s(len(b))
			for i, x := range b {
				out[i] = boolU32(x)
			}
		default:
			r.badType(v)
		}
	default:
		panic(fmt.Sprintf("cabi: field %s has type %d, which triage does not produce", r.Field(), r.FieldType()))
	}
}

func (r *Request) badType(v any) {
	panic(fmt.Sprintf("cabi: field %s (type %d, list %v) cannot take a %T", r.Field(), r.FieldType(), r.IsList(), v))
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func (r *Request) setU64(v uint64) { r.u64s(1)[0] = v }

func (r *Request) setU64s(vs []uint64) { copy(r.u64s(len(vs)), vs) }

// u64s points the result at n uint64 slots of the buffer.
func (r *Request) u64s(n int) []uint64 {
	p := r.res().mustEnsure(max(n, 1) * 8)
	r.req.res, r.req.res_len = p, C.uint64_t(n)
	return unsafe.Slice((*uint64)(p), max(n, 1))[:n]
}

func (r *Request) u32s(n int) []uint32 {
	p := r.res().mustEnsure(max(n, 1) * 4)
	r.req.res, r.req.res_len = p, C.uint64_t(n)
	return unsafe.Slice((*uint32)(p), max(n, 1))[:n]
}

// setStrings writes list (or, when list is nil, the one string one) as an
// array of char* followed by the NUL-terminated bytes, all in one buffer.
func (r *Request) setStrings(list []string, one string) {
	n := len(list)
	if list == nil {
		n = 1
	}
	at := func(i int) string {
		if list == nil {
			return one
		}
		return list[i]
	}
	size := max(n, 1) * 8
	for i := 0; i < n; i++ {
		size += len(at(i)) + 1
	}
	base := r.res().mustEnsure(size)
	ptrs := unsafe.Slice((*unsafe.Pointer)(base), max(n, 1))
	bytes := unsafe.Slice((*byte)(base), size)
	off := max(n, 1) * 8
	for i := 0; i < n; i++ {
		s := at(i)
		ptrs[i] = unsafe.Add(base, off)
		off += copy(bytes[off:], s)
		bytes[off] = 0
		off++
	}
	r.req.res, r.req.res_len = base, C.uint64_t(n)
}

// fieldLayout reports offsetof of each member and the struct size (tests).
func fieldLayout() []uintptr {
	var f C.cabi_extract_field
	return []uintptr{
		unsafe.Offsetof(f.res), unsafe.Offsetof(f.res_len), unsafe.Offsetof(f.field_id),
		unsafe.Offsetof(f.field), unsafe.Offsetof(f.arg_key), unsafe.Offsetof(f.arg_index),
		unsafe.Offsetof(f.arg_present), unsafe.Offsetof(f.ftype), unsafe.Offsetof(f.flist),
		unsafe.Sizeof(f),
	}
}
