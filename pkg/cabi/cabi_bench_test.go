package cabi

import (
	"testing"
	"unsafe"

	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk"
)

// hostCall drives a pool the way plugin-sdk-go v0.8.3's
// plugin_extract_fields_sync does for one extract_fields call (offsets
// when offs is non-nil, then per field: Get, SetPtr, SetOffsetPtrs, and
// the plugin's SetValue).
func hostCall(pool *RequestPool, fields []goField, offs *struct{ start, length *uint32 }, set func(i int, r sdk.ExtractRequest)) {
	if offs != nil {
		pool.MakeOffsetArrayPtrs(unsafe.Pointer(offs), uint32(len(fields)))
	}
	for i := range fields {
		fields[i].resLen = 0
		r := pool.Get(int(fields[i].fieldID))
		r.SetPtr(unsafe.Pointer(&fields[i]))
		if offs == nil {
			r.SetOffsetPtrs(nil, nil)
		} else {
			r.SetOffsetPtrs(unsafe.Add(unsafe.Pointer(offs.start), 4*i), unsafe.Add(unsafe.Pointer(offs.length), 4*i))
		}
		set(i, r)
	}
}

// BenchmarkOneFieldPerCall: libsinsp's pattern, one string field per call
// from the same request struct.
func BenchmarkOneFieldPerCall(b *testing.B) {
	pool := NewRequestPool()
	defer pool.Free()
	fields := []goField{{fieldID: 5, ftype: sdk.FieldTypeCharBuf, field: cstr("alert.rule")}}
	set := func(_ int, r sdk.ExtractRequest) { r.SetValue("Terminal shell in container") }
	for b.Loop() {
		hostCall(pool, fields, nil, set)
	}
}

// BenchmarkOneFieldPerCallU64 is the same for a uint64 field.
func BenchmarkOneFieldPerCallU64(b *testing.B) {
	pool := NewRequestPool()
	defer pool.Free()
	fields := []goField{{fieldID: 2, ftype: sdk.FieldTypeUint64, field: cstr("risk.score")}}
	set := func(_ int, r sdk.ExtractRequest) { r.SetValue(uint64(82)) }
	for b.Loop() {
		hostCall(pool, fields, nil, set)
	}
}

// BenchmarkFieldsOneCall: eight different fields in one call.
func BenchmarkFieldsOneCall(b *testing.B) {
	pool := NewRequestPool()
	defer pool.Free()
	fields := make([]goField, 8)
	for i := range fields {
		fields[i] = goField{fieldID: uint32(i), ftype: sdk.FieldTypeCharBuf, field: cstr("f")}
	}
	set := func(_ int, r sdk.ExtractRequest) { r.SetValue("value") }
	for b.Loop() {
		hostCall(pool, fields, nil, set)
	}
}

// BenchmarkSameFieldTwiceOneCall: one field asked with two arguments in
// one call.
func BenchmarkSameFieldTwiceOneCall(b *testing.B) {
	pool := NewRequestPool()
	defer pool.Free()
	fields := []goField{
		{fieldID: 9, ftype: sdk.FieldTypeCharBuf, field: cstr("alert.field"), argKey: cstr("proc.name"), argPresent: 1},
		{fieldID: 9, ftype: sdk.FieldTypeCharBuf, field: cstr("alert.field"), argKey: cstr("fd.name"), argPresent: 1},
	}
	set := func(i int, r sdk.ExtractRequest) { r.SetValue(r.ArgKey()) }
	for b.Loop() {
		hostCall(pool, fields, nil, set)
	}
}
