package cabi

/*
#include <stdlib.h>
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk"
)

// A plugin event (PPME_PLUGINEVENT_E) as the plugin API lays it out, in
// host byte order: the packed 26-byte ss_plugin_event header (ts u64, tid
// u64, len u32, type u16, nparams u32), the two parameter lengths (plugin
// ID, payload), the plugin ID, then the payload.
const (
	offTS, offTID, offLen, offType, offNParams = 0, 8, 16, 20, 22
	headerSize                                 = 26
	offIDLen, offDataLen, offPluginID          = headerSize, headerSize + 4, headerSize + 8
	// PayloadOffset is where the payload starts (the SDK's
	// sdk.PluginEventPayloadOffset).
	PayloadOffset   = headerSize + 12
	pluginEventType = 322
)

var native = binary.NativeEndian

// EventWriters is an sdk.EventWriters whose events take their payload in
// one memmove.
type EventWriters struct {
	evts []EventWriter
	ptrs unsafe.Pointer // C array of event pointers, handed to the host
}

// NewEventWriters allocates size events of at most dataSize payload bytes.
func NewEventWriters(size, dataSize int) (*EventWriters, error) {
	if size < 1 {
		return nil, fmt.Errorf("cabi: invalid batch size %d", size)
	}
	if dataSize < 0 || dataSize > 1<<31 {
		return nil, fmt.Errorf("cabi: invalid event size %d", dataSize)
	}
	w := &EventWriters{evts: make([]EventWriter, size)}
	w.ptrs = C.calloc(C.size_t(size), C.size_t(unsafe.Sizeof(uintptr(0))))
	if w.ptrs == nil {
		return nil, errors.New("cabi: out of C memory for the event batch")
	}
	ptrs := unsafe.Slice((*unsafe.Pointer)(w.ptrs), size)
	for i := range w.evts {
		e := C.malloc(C.size_t(PayloadOffset + dataSize))
		if e == nil {
			w.Free()
			return nil, errors.New("cabi: out of C memory for events")
		}
		w.evts[i] = EventWriter{evt: e, capacity: dataSize}
		w.evts[i].init()
		ptrs[i] = e
	}
	return w, nil
}

// Get returns event i of the batch.
func (w *EventWriters) Get(i int) sdk.EventWriter { return &w.evts[i] }

// Len is the batch size.
func (w *EventWriters) Len() int { return len(w.evts) }

// ArrayPtr is the C array of event pointers next_batch returns.
func (w *EventWriters) ArrayPtr() unsafe.Pointer { return w.ptrs }

// Free releases the events and the array.
func (w *EventWriters) Free() {
	for i := range w.evts {
		if w.evts[i].evt != nil {
			C.free(w.evts[i].evt)
			w.evts[i].evt = nil
		}
	}
	if w.ptrs != nil {
		C.free(w.ptrs)
		w.ptrs = nil
	}
}

// EventWriter is one event of the batch. Writer empties the payload; each
// Write appends to it.
type EventWriter struct {
	evt      unsafe.Pointer
	capacity int
	used     int
}

// ErrTooLarge is returned by Write when the payload would not fit.
var ErrTooLarge = errors.New("event payload larger than the event buffer")

func (e *EventWriter) header() []byte { return unsafe.Slice((*byte)(e.evt), PayloadOffset) }

func (e *EventWriter) init() {
	h := e.header()
	native.PutUint64(h[offTS:], ^uint64(0)) // "now" unless SetTimestamp
	native.PutUint64(h[offTID:], ^uint64(0))
	native.PutUint16(h[offType:], pluginEventType)
	native.PutUint32(h[offNParams:], 2)
	native.PutUint32(h[offIDLen:], 4)
	native.PutUint32(h[offPluginID:], 0) // 0: the framework fills in the plugin's ID
	e.setUsed(0)
}

func (e *EventWriter) setUsed(n int) {
	e.used = n
	h := e.header()
	native.PutUint32(h[offLen:], uint32(PayloadOffset+n))
	native.PutUint32(h[offDataLen:], uint32(n))
}

// Writer starts a new payload and returns the event as its io.Writer.
func (e *EventWriter) Writer() io.Writer {
	e.setUsed(0)
	return e
}

// Write appends p to the payload, all or nothing.
func (e *EventWriter) Write(p []byte) (int, error) {
	if len(p) > e.capacity-e.used {
		return 0, fmt.Errorf("%w: %d bytes, room for %d", ErrTooLarge, len(p), e.capacity-e.used)
	}
	if len(p) == 0 {
		return 0, nil
	}
	copy(unsafe.Slice((*byte)(unsafe.Add(e.evt, PayloadOffset+e.used)), len(p)), p)
	e.setUsed(e.used + len(p))
	return len(p), nil
}

// SetTimestamp sets the event time (ns since the epoch).
func (e *EventWriter) SetTimestamp(ts uint64) { native.PutUint64(e.header()[offTS:], ts) }
