package cabi

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goField mirrors ss_plugin_extract_field so tests can build requests in
// Go memory; TestExtractFieldLayout ties both to the plugin API's layout.
type goField struct {
	res        unsafe.Pointer
	resLen     uint64
	fieldID    uint32
	field      *byte
	argKey     *byte
	argIndex   uint64
	argPresent uint32
	ftype      uint32
	flist      uint32
}

func TestExtractFieldLayout(t *testing.T) {
	var f goField
	mirror := []uintptr{
		unsafe.Offsetof(f.res), unsafe.Offsetof(f.resLen), unsafe.Offsetof(f.fieldID),
		unsafe.Offsetof(f.field), unsafe.Offsetof(f.argKey), unsafe.Offsetof(f.argIndex),
		unsafe.Offsetof(f.argPresent), unsafe.Offsetof(f.ftype), unsafe.Offsetof(f.flist),
		unsafe.Sizeof(f),
	}
	assert.Equal(t, mirror, fieldLayout())
	if unsafe.Sizeof(uintptr(0)) == 8 {
		// plugin_api.h on LP64: res, res_len, field_id, field, arg_key,
		// arg_index, arg_present, ftype, flist; 64 bytes.
		assert.Equal(t, []uintptr{0, 8, 16, 24, 32, 40, 48, 52, 56, 64}, fieldLayout())
	}
}

func cstr(s string) *byte { b := append([]byte(s), 0); return &b[0] }

func request(t *testing.T, pool *RequestPool, id int, ftype uint32, list bool) (*Request, *goField) {
	t.Helper()
	f := &goField{fieldID: uint32(id), ftype: ftype, field: cstr("test.field")}
	if list {
		f.flist = 1
	}
	r := pool.Get(id).(*Request)
	r.SetPtr(unsafe.Pointer(f))
	return r, f
}

func cStrings(f *goField) []string {
	ptrs := unsafe.Slice((**byte)(f.res), f.resLen)
	out := make([]string, len(ptrs))
	for i, p := range ptrs {
		n := 0
		for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
			n++
		}
		out[i] = string(unsafe.Slice(p, n))
	}
	return out
}

func TestSetValueStrings(t *testing.T) {
	pool := NewRequestPool()
	defer pool.Free()
	r, f := request(t, pool, 3, sdk.FieldTypeCharBuf, false)
	r.SetValue("short")
	assert.Equal(t, []string{"short"}, cStrings(f))
	long := strings.Repeat("x", 5000) + "end" // forces the buffer to grow
	r.SetValue(long)
	assert.Equal(t, []string{long}, cStrings(f))
	r.SetValue("")
	assert.Equal(t, []string{""}, cStrings(f))

	l, lf := request(t, pool, 7, sdk.FieldTypeCharBuf, true)
	l.SetValue([]string{"T1059", "", "T1611 with spaces", "ü"})
	assert.Equal(t, []string{"T1059", "", "T1611 with spaces", "ü"}, cStrings(lf))
	l.SetValue([]string{})
	assert.Zero(t, lf.resLen, "an empty list is no value")
	// The first request's value is untouched by the second's.
	assert.Equal(t, []string{""}, cStrings(f))
	assert.Same(t, r, pool.Get(3), "one request per field ID")
}

func TestSetValueNumbersAndBools(t *testing.T) {
	pool := NewRequestPool()
	defer pool.Free()
	u, uf := request(t, pool, 0, sdk.FieldTypeUint64, false)
	u.SetValue(uint64(42))
	assert.Equal(t, []uint64{42}, unsafe.Slice((*uint64)(uf.res), uf.resLen))
	u.SetValue([]uint64{1, 2, 3})
	assert.Equal(t, []uint64{1, 2, 3}, unsafe.Slice((*uint64)(uf.res), uf.resLen))

	ts, tf := request(t, pool, 1, sdk.FieldTypeAbsTime, false)
	when := time.Unix(1700000000, 123)
	ts.SetValue(when)
	assert.Equal(t, []uint64{uint64(when.UnixNano())}, unsafe.Slice((*uint64)(tf.res), tf.resLen))
	d, df := request(t, pool, 2, sdk.FieldTypeRelTime, true)
	d.SetValue([]time.Duration{time.Second, time.Millisecond})
	assert.Equal(t, []uint64{1e9, 1e6}, unsafe.Slice((*uint64)(df.res), df.resLen))

	b, bf := request(t, pool, 4, sdk.FieldTypeBool, false)
	b.SetValue(true)
	assert.Equal(t, []uint32{1}, unsafe.Slice((*uint32)(bf.res), bf.resLen))
	b.SetValue([]bool{false, true})
	assert.Equal(t, []uint32{0, 1}, unsafe.Slice((*uint32)(bf.res), bf.resLen))
}

func TestSetValueWrongTypePanicsWithTheField(t *testing.T) {
	pool := NewRequestPool()
	defer pool.Free()
	r, _ := request(t, pool, 0, sdk.FieldTypeUint64, false)
	assert.PanicsWithValue(t, "cabi: field test.field (type 8, list false) cannot take a string", func() { r.SetValue("x") })
	r2, _ := request(t, pool, 1, sdk.FieldTypeIPAddr, false)
	assert.Panics(t, func() { r2.SetValue([]byte{127, 0, 0, 1}) })
}

func TestOffsets(t *testing.T) {
	pool := NewRequestPool()
	defer pool.Free()
	var offs struct{ start, length *uint32 }
	pool.MakeOffsetArrayPtrs(unsafe.Pointer(&offs), 4)
	require.NotNil(t, offs.start)
	starts, lens := unsafe.Slice(offs.start, 4), unsafe.Slice(offs.length, 4)
	r, _ := request(t, pool, 0, sdk.FieldTypeUint64, false)
	assert.False(t, r.WantOffset())
	r.SetOffsetPtrs(unsafe.Pointer(&starts[2]), unsafe.Pointer(&lens[2]))
	assert.True(t, r.WantOffset())
	r.SetValueOffset(10, 5)
	assert.Equal(t, []uint32{0, 0, 10, 0}, starts)
	assert.Equal(t, []uint32{0, 0, 5, 0}, lens)
	pool.MakeOffsetArrayPtrs(unsafe.Pointer(&offs), 4)
	assert.Equal(t, []uint32{0, 0, 0, 0}, unsafe.Slice(offs.start, 4), "zeroed for every call")
}

// readEvent decodes the plugin-event layout independently of events.go.
func readEvent(p unsafe.Pointer) (ts, tid uint64, length uint32, typ uint16, nparams, idLen, dataLen, pluginID uint32, data []byte) {
	h := unsafe.Slice((*byte)(p), 38)
	le := binary.LittleEndian
	ts, tid, length = le.Uint64(h[0:]), le.Uint64(h[8:]), le.Uint32(h[16:])
	typ, nparams = le.Uint16(h[20:]), le.Uint32(h[22:])
	idLen, dataLen, pluginID = le.Uint32(h[26:]), le.Uint32(h[30:]), le.Uint32(h[34:])
	data = append([]byte(nil), unsafe.Slice((*byte)(unsafe.Add(p, 38)), dataLen)...)
	return
}

func TestEventWriters(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("layout check written for little-endian hosts")
	}
	w, err := NewEventWriters(3, 16)
	require.NoError(t, err)
	defer w.Free()
	assert.Equal(t, 3, w.Len())
	ptrs := unsafe.Slice((*unsafe.Pointer)(w.ArrayPtr()), 3)

	e := w.Get(1)
	out := e.Writer()
	n, err := out.Write([]byte("TRG\x01"))
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	_, err = out.Write([]byte("payload"))
	require.NoError(t, err)
	e.SetTimestamp(1234)
	ts, tid, length, typ, nparams, idLen, dataLen, pid, data := readEvent(ptrs[1])
	assert.Equal(t, uint64(1234), ts)
	assert.Equal(t, ^uint64(0), tid)
	assert.Equal(t, uint32(38+11), length)
	assert.Equal(t, uint16(322), typ)
	assert.Equal(t, uint32(2), nparams)
	assert.Equal(t, uint32(4), idLen)
	assert.Equal(t, uint32(11), dataLen)
	assert.Equal(t, uint32(0), pid)
	assert.Equal(t, "TRG\x01payload", string(data))

	// Too large: refused whole, the payload so far is kept.
	_, err = out.Write([]byte("0123456789"))
	assert.ErrorIs(t, err, ErrTooLarge)
	_, _, _, _, _, _, dataLen, _, _ = readEvent(ptrs[1])
	assert.Equal(t, uint32(11), dataLen)
	// Writer starts over.
	_, err = e.Writer().Write([]byte("x"))
	require.NoError(t, err)
	_, _, length, _, _, _, dataLen, _, data = readEvent(ptrs[1])
	assert.Equal(t, uint32(39), length)
	assert.Equal(t, "x", string(data))

	// An untouched event is an empty plugin event with "now" as its time.
	ts, _, length, typ, _, _, dataLen, _, _ = readEvent(ptrs[0])
	assert.Equal(t, ^uint64(0), ts)
	assert.Equal(t, uint32(38), length)
	assert.Equal(t, uint16(322), typ)
	assert.Zero(t, dataLen)

	_, err = NewEventWriters(0, 16)
	assert.Error(t, err)
}

// TestGetOddFieldIDs: the SDK asks for whatever field ID the host sends,
// outside any recover; an ID no field has must neither panic nor make the
// pool allocate one slot per possible ID.
func TestGetOddFieldIDs(t *testing.T) {
	pool := NewRequestPool()
	defer pool.Free()
	for _, id := range []int{-1, maxDirectID, 1 << 31} {
		r, f := request(t, pool, id, sdk.FieldTypeUint64, false)
		r.SetValue(uint64(7))
		assert.Equal(t, []uint64{7}, unsafe.Slice((*uint64)(f.res), f.resLen))
		assert.Same(t, r, pool.Get(id))
	}
	assert.Empty(t, pool.reqs, "no slots for IDs beyond the direct range")
}

// TestSameFieldTwiceInOneCall: one extract_fields call may ask for the same
// field ID with different arguments; each request keeps its own value,
// for strings, string lists and numbers, with and without value offsets.
func TestSameFieldTwiceInOneCall(t *testing.T) {
	for _, withOffsets := range []bool{false, true} {
		t.Run(map[bool]string{false: "no offsets", true: "offsets"}[withOffsets], func(t *testing.T) {
			pool := NewRequestPool()
			defer pool.Free()
			str := func(key string) goField {
				return goField{fieldID: 9, ftype: sdk.FieldTypeCharBuf, field: cstr("alert.field"), argKey: cstr(key), argPresent: 1}
			}
			fields := []goField{
				str("proc.name"),
				{fieldID: 4, ftype: sdk.FieldTypeUint64, field: cstr("n"), argKey: cstr("1"), argPresent: 1},
				str("fd.name"),
				{fieldID: 5, ftype: sdk.FieldTypeCharBuf, flist: 1, field: cstr("l"), argKey: cstr("a"), argPresent: 1},
				{fieldID: 4, ftype: sdk.FieldTypeUint64, field: cstr("n"), argKey: cstr("2"), argPresent: 1},
				{fieldID: 5, ftype: sdk.FieldTypeCharBuf, flist: 1, field: cstr("l"), argKey: cstr("b"), argPresent: 1},
				str("proc.name"), // the same argument twice: two answers too
			}
			var offs *struct{ start, length *uint32 }
			if withOffsets {
				offs = &struct{ start, length *uint32 }{}
			}
			// Long values make every later SetValue grow its buffer, which
			// would move or free memory an earlier request still points at.
			set := func(i int, r sdk.ExtractRequest) {
				key := r.ArgKey()
				switch r.FieldID() {
				case 9:
					r.SetValue(strings.Repeat(key, 10*(i+1)))
				case 4:
					r.SetValue(uint64(1000 + i))
				case 5:
					r.SetValue([]string{key, strings.Repeat(key, 100*(i+1))})
				}
				r.SetValueOffset(uint32(i), uint32(10*i))
			}
			for round := 0; round < 3; round++ {
				hostCall(pool, fields, offs, set)
				assert.Equal(t, []string{strings.Repeat("proc.name", 10)}, cStrings(&fields[0]))
				assert.Equal(t, []uint64{1001}, unsafe.Slice((*uint64)(fields[1].res), fields[1].resLen))
				assert.Equal(t, []string{strings.Repeat("fd.name", 30)}, cStrings(&fields[2]))
				assert.Equal(t, []string{"a", strings.Repeat("a", 400)}, cStrings(&fields[3]))
				assert.Equal(t, []uint64{1004}, unsafe.Slice((*uint64)(fields[4].res), fields[4].resLen))
				assert.Equal(t, []string{"b", strings.Repeat("b", 600)}, cStrings(&fields[5]))
				assert.Equal(t, []string{strings.Repeat("proc.name", 70)}, cStrings(&fields[6]))
				if withOffsets {
					require.NotNil(t, offs.start)
					assert.Equal(t, []uint32{0, 1, 2, 3, 4, 5, 6}, unsafe.Slice(offs.start, len(fields)))
					assert.Equal(t, []uint32{0, 10, 20, 30, 40, 50, 60}, unsafe.Slice(offs.length, len(fields)))
				}
			}
			// Repeating the call reuses the buffers: one extra per repeat.
			assert.Len(t, pool.Get(9).(*Request).more, 2)
			assert.Len(t, pool.Get(4).(*Request).more, 1)
		})
	}
}

// TestOneFieldPerCallKeepsOneBuffer: libsinsp's one field per call, from
// the same struct or a fresh one each time, always writes into the
// request's first buffer, and the value of another field stays put.
func TestOneFieldPerCallKeepsOneBuffer(t *testing.T) {
	pool := NewRequestPool()
	defer pool.Free()
	other := []goField{{fieldID: 2, ftype: sdk.FieldTypeCharBuf, field: cstr("other")}}
	hostCall(pool, other, nil, func(_ int, r sdk.ExtractRequest) { r.SetValue("kept") })
	one := []goField{{fieldID: 9, ftype: sdk.FieldTypeCharBuf, field: cstr("alert.field")}}
	for i := 0; i < 5; i++ {
		hostCall(pool, one, nil, func(_ int, r sdk.ExtractRequest) { r.SetValue(strings.Repeat("v", i+1)) })
		assert.Equal(t, []string{strings.Repeat("v", i+1)}, cStrings(&one[0]))
		// A struct elsewhere (not right after one[0], which would read as
		// the same call going on).
		pair := make([]goField, 2)
		fresh := pair[1:]
		if uintptr(unsafe.Pointer(&fresh[0])) == uintptr(unsafe.Pointer(&one[0]))+unsafe.Sizeof(one[0]) {
			fresh = pair[:1]
		}
		fresh[0] = one[0]
		hostCall(pool, fresh, nil, func(_ int, r sdk.ExtractRequest) { r.SetValue("fresh") })
		assert.Equal(t, []string{"fresh"}, cStrings(&fresh[0]))
	}
	r := pool.Get(9).(*Request)
	assert.Empty(t, r.more, "no extra buffer without a repeat in one call")
	assert.Same(t, &r.first, r.res())
	assert.Equal(t, []string{"kept"}, cStrings(&other[0]))
}
