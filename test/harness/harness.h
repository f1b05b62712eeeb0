// C side of the triage test harness: our own declarations of the Falco
// plugin API 3.x ABI (checked against plugin-sdk-go v0.8.3's plugin_api.h /
// plugin_types.h by TestABILayout) plus small trampolines, because Go cannot
// call C function pointers directly.
//
// Only the parts of the ABI the harness drives are declared. Opaque plugin
// state (ss_plugin_t*) and instance (ss_instance_t*) pointers cross into Go
// as uintptr_t: plugin-sdk-go hands out small integers (cgo handles 1..255)
// for them, and Go's stack copier throws "invalid pointer found on stack" if
// such a value sits in a pointer-typed Go variable.

#ifndef TRIAGE_HARNESS_H
#define TRIAGE_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#define HS_MAX_ERRLEN 1024 /* PLUGIN_MAX_ERRLEN */

/* ---- plugin_types.h equivalents ---------------------------------------- */

typedef uint32_t ss_plugin_bool;

/* enum ss_plugin_rc: an int-sized enum in C; declared as int32_t here. */
typedef int32_t ss_plugin_rc;
#define HS_RC_SUCCESS 0
#define HS_RC_FAILURE 1
#define HS_RC_TIMEOUT (-1)
#define HS_RC_EOF 2
#define HS_RC_NOT_SUPPORTED 3

/* enum ss_plugin_schema_type */
typedef int32_t ss_plugin_schema_type;
/* enum ss_plugin_state_type */
typedef int32_t ss_plugin_state_type;
/* enum ss_plugin_log_severity */
typedef int32_t ss_plugin_log_severity;

/* Packed event header: | ts u64 | tid u64 | len u32 | type u16 | nparams u32 |
 * = 26 bytes, followed by the parameter lengths and the parameter data.
 * cgo cannot address the misaligned nparams field, so Go never touches this
 * struct directly; use hs_event_header(). */
#pragma pack(push, 1)
typedef struct ss_plugin_event {
	uint64_t ts;
	uint64_t tid;
	uint32_t len;
	uint16_t type;
	uint32_t nparams;
} ss_plugin_event;
#pragma pack(pop)

typedef struct ss_plugin_event_input {
	const ss_plugin_event* evt;
	uint64_t evtnum;
	const char* evtsrc;
} ss_plugin_event_input;

typedef struct ss_plugin_byte_buffer {
	uint32_t len;
	const void* ptr;
} ss_plugin_byte_buffer;

typedef struct ss_plugin_extract_value_offsets {
	uint32_t* start;
	uint32_t* length;
} ss_plugin_extract_value_offsets;

typedef struct ss_plugin_extract_field {
	union {
		const char** str;
		uint64_t* u64;
		uint32_t* u32;
		ss_plugin_bool* boolean;
		ss_plugin_byte_buffer* buf;
	} res;
	uint64_t res_len;
	uint32_t field_id;
	const char* field;
	const char* arg_key;
	uint64_t arg_index;
	ss_plugin_bool arg_present;
	uint32_t ftype;
	ss_plugin_bool flist;
} ss_plugin_extract_field;

typedef void ss_plugin_table_t;
typedef void ss_plugin_table_entry_t;
typedef void ss_plugin_table_field_t;
typedef void ss_plugin_owner_t;
typedef void ss_plugin_t;
typedef void ss_instance_t;

typedef union ss_plugin_state_data {
	int8_t s8;
	int16_t s16;
	int32_t s32;
	int64_t s64;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	const char* str;
	ss_plugin_bool b;
	ss_plugin_table_t* table;
} ss_plugin_state_data;

typedef struct ss_plugin_table_info {
	const char* name;
	ss_plugin_state_type key_type;
} ss_plugin_table_info;

typedef struct ss_plugin_table_fieldinfo {
	const char* name;
	ss_plugin_state_type field_type;
	ss_plugin_bool read_only;
} ss_plugin_table_fieldinfo;

/* ---- plugin_api.h equivalents (the parts the harness fills in) ---------- */

typedef struct {
	const ss_plugin_table_fieldinfo* (*list_table_fields)(ss_plugin_table_t* t, uint32_t* nfields);
	ss_plugin_table_field_t* (*get_table_field)(ss_plugin_table_t* t, const char* name,
	                                            ss_plugin_state_type data_type);
	ss_plugin_table_field_t* (*add_table_field)(ss_plugin_table_t* t, const char* name,
	                                            ss_plugin_state_type data_type);
} ss_plugin_table_fields_vtable;

/* Same shape as ss_plugin_table_fields_vtable in API 3.x. */
typedef ss_plugin_table_fields_vtable ss_plugin_table_fields_vtable_ext;

typedef struct {
	const char* (*get_table_name)(ss_plugin_table_t* t);
	uint64_t (*get_table_size)(ss_plugin_table_t* t);
	ss_plugin_table_entry_t* (*get_table_entry)(ss_plugin_table_t* t, const ss_plugin_state_data* key);
	ss_plugin_rc (*read_entry_field)(ss_plugin_table_t* t, ss_plugin_table_entry_t* e,
	                                 const ss_plugin_table_field_t* f, ss_plugin_state_data* out);
} ss_plugin_table_reader_vtable;

typedef void ss_plugin_table_iterator_state_t;
typedef ss_plugin_bool (*ss_plugin_table_iterator_func_t)(ss_plugin_table_iterator_state_t* s,
                                                          ss_plugin_table_entry_t* e);

typedef struct {
	const char* (*get_table_name)(ss_plugin_table_t* t);
	uint64_t (*get_table_size)(ss_plugin_table_t* t);
	ss_plugin_table_entry_t* (*get_table_entry)(ss_plugin_table_t* t, const ss_plugin_state_data* key);
	ss_plugin_rc (*read_entry_field)(ss_plugin_table_t* t, ss_plugin_table_entry_t* e,
	                                 const ss_plugin_table_field_t* f, ss_plugin_state_data* out);
	void (*release_table_entry)(ss_plugin_table_t* t, ss_plugin_table_entry_t* e);
	ss_plugin_bool (*iterate_entries)(ss_plugin_table_t* t, ss_plugin_table_iterator_func_t it,
	                                  ss_plugin_table_iterator_state_t* s);
} ss_plugin_table_reader_vtable_ext;

typedef struct {
	ss_plugin_rc (*clear_table)(ss_plugin_table_t* t);
	ss_plugin_rc (*erase_table_entry)(ss_plugin_table_t* t, const ss_plugin_state_data* key);
	ss_plugin_table_entry_t* (*create_table_entry)(ss_plugin_table_t* t);
	void (*destroy_table_entry)(ss_plugin_table_t* t, ss_plugin_table_entry_t* e);
	ss_plugin_table_entry_t* (*add_table_entry)(ss_plugin_table_t* t, const ss_plugin_state_data* key,
	                                            ss_plugin_table_entry_t* entry);
	ss_plugin_rc (*write_entry_field)(ss_plugin_table_t* t, ss_plugin_table_entry_t* e,
	                                  const ss_plugin_table_field_t* f, const ss_plugin_state_data* in);
} ss_plugin_table_writer_vtable;

/* Same shape as ss_plugin_table_writer_vtable in API 3.x. */
typedef ss_plugin_table_writer_vtable ss_plugin_table_writer_vtable_ext;

typedef struct {
	const char* name;
	ss_plugin_state_type key_type;
	ss_plugin_table_t* table;
	ss_plugin_table_reader_vtable reader;
	ss_plugin_table_writer_vtable writer;
	ss_plugin_table_fields_vtable fields;
	ss_plugin_table_reader_vtable_ext* reader_ext;
	ss_plugin_table_writer_vtable_ext* writer_ext;
	ss_plugin_table_fields_vtable_ext* fields_ext;
} ss_plugin_table_input;

typedef struct {
	ss_plugin_table_info* (*list_tables)(ss_plugin_owner_t* o, uint32_t* ntables);
	ss_plugin_table_t* (*get_table)(ss_plugin_owner_t* o, const char* name, ss_plugin_state_type key_type);
	ss_plugin_rc (*add_table)(ss_plugin_owner_t* o, const ss_plugin_table_input* in);
	ss_plugin_table_fields_vtable fields;
	ss_plugin_table_fields_vtable_ext* fields_ext;
	ss_plugin_table_reader_vtable_ext* reader_ext;
	ss_plugin_table_writer_vtable_ext* writer_ext;
} ss_plugin_init_tables_input;

typedef void (*ss_plugin_log_fn_t)(ss_plugin_owner_t* o, const char* component, const char* msg,
                                   ss_plugin_log_severity sev);

typedef struct ss_plugin_init_input {
	const char* config;
	ss_plugin_owner_t* owner;
	const char* (*get_owner_last_error)(ss_plugin_owner_t* o);
	const ss_plugin_init_tables_input* tables;
	ss_plugin_log_fn_t log_fn;
} ss_plugin_init_input;

typedef struct ss_plugin_field_extract_input {
	ss_plugin_owner_t* owner;
	const char* (*get_owner_last_error)(ss_plugin_owner_t* o);
	uint32_t num_fields;
	ss_plugin_extract_field* fields;
	ss_plugin_table_reader_vtable table_reader;
	ss_plugin_table_reader_vtable_ext* table_reader_ext;
	ss_plugin_extract_value_offsets* value_offsets;
} ss_plugin_field_extract_input;

/* ---- harness state ------------------------------------------------------ */

/* Exported plugin symbols, resolved one by one with dlsym. NULL = absent. */
typedef struct hs_api {
	void* dl;
	const char* (*get_required_api_version)(void);
	const char* (*get_version)(void);
	const char* (*get_name)(void);
	const char* (*get_description)(void);
	const char* (*get_contact)(void);
	uint32_t (*get_id)(void);
	const char* (*get_event_source)(void);
	const char* (*get_init_schema)(ss_plugin_schema_type* schema_type);
	const char* (*get_fields)(void);
	const char* (*get_extract_event_sources)(void);
	uint16_t* (*get_extract_event_types)(uint32_t* numtypes, ss_plugin_t* s);
	ss_plugin_t* (*init)(const ss_plugin_init_input* input, ss_plugin_rc* rc);
	void (*destroy)(ss_plugin_t* s);
	const char* (*get_last_error)(ss_plugin_t* s);
	ss_instance_t* (*open)(ss_plugin_t* s, const char* params, ss_plugin_rc* rc);
	void (*close)(ss_plugin_t* s, ss_instance_t* h);
	ss_plugin_rc (*next_batch)(ss_plugin_t* s, ss_instance_t* h, uint32_t* nevts, ss_plugin_event*** evts);
	const char* (*event_to_string)(ss_plugin_t* s, const ss_plugin_event_input* evt);
	ss_plugin_rc (*extract_fields)(ss_plugin_t* s, const ss_plugin_event_input* evt,
	                               const ss_plugin_field_extract_input* in);
	const char* (*list_open_params)(ss_plugin_t* s, ss_plugin_rc* rc);
	const char* (*get_progress)(ss_plugin_t* s, ss_instance_t* h, uint32_t* progress_pct);
} hs_api;

typedef struct hs_log_entry {
	char* component;
	char* msg;
	int32_t sev;
} hs_log_entry;

/* The ss_plugin_owner_t* the harness hands to the plugin (Falco passes its
 * sinsp_plugin*). Carries the owner's last error (for table-API stubs) and a
 * bounded, mutex-protected log buffer filled by log_fn, which the plugin may
 * call from any of its threads. Go drains it with hs_owner_take_logs. */
typedef struct hs_owner hs_owner;

/* Unpacked copy of an event header. */
typedef struct hs_evt_hdr {
	uint64_t ts;
	uint64_t tid;
	uint32_t len;
	uint16_t type;
	uint32_t nparams;
} hs_evt_hdr;

int hs_load(const char* path, hs_api* api, char* err, size_t errlen);
void* hs_dlsym(void* dl, const char* name);

const char* hs_call_str(const char* (*fn)(void));
uint32_t hs_get_id(const hs_api* api);
const char* hs_get_init_schema(const hs_api* api, int32_t* schema_type);
uint16_t* hs_get_extract_event_types(const hs_api* api, uintptr_t s, uint32_t* n);

hs_owner* hs_owner_new(void);
void hs_owner_free(hs_owner* o);
const char* hs_owner_last_error(hs_owner* o);
size_t hs_owner_take_logs(hs_owner* o, hs_log_entry** out, uint64_t* dropped);
void hs_free_logs(hs_log_entry* logs, size_t n);
void hs_test_log(hs_owner* o, const char* component, const char* msg, int32_t sev);
int hs_test_get_table(hs_owner* o, const char* name, const char** owner_err);

uintptr_t hs_init(const hs_api* api, hs_owner* owner, const char* config, int with_tables, int32_t* rc);
void hs_destroy(const hs_api* api, uintptr_t s);
const char* hs_get_last_error(const hs_api* api, uintptr_t s);
const char* hs_list_open_params(const hs_api* api, uintptr_t s, int32_t* rc);
uintptr_t hs_open(const hs_api* api, uintptr_t s, const char* params, int32_t* rc);
void hs_close(const hs_api* api, uintptr_t s, uintptr_t h);
int32_t hs_next_batch(const hs_api* api, uintptr_t s, uintptr_t h, uint32_t* nevts, void*** evts);
const char* hs_get_progress(const hs_api* api, uintptr_t s, uintptr_t h, uint32_t* pct);
const char* hs_event_to_string(const hs_api* api, uintptr_t s, const void* evt, uint64_t num,
                               const char* src);
int32_t hs_extract(const hs_api* api, uintptr_t s, hs_owner* owner, const void* evt, uint64_t num,
                   const char* src, uint32_t nfields, ss_plugin_extract_field* fields,
                   int want_offsets, uint32_t** off_start, uint32_t** off_length);

int32_t hs_time_extract(const hs_api* api, uintptr_t s, hs_owner* owner, void* const* evts,
                        const uint64_t* nums, size_t nevts, const char* src, uint32_t nfields,
                        ss_plugin_extract_field* fields, int per_field, uint64_t rounds,
                        uint64_t* elapsed_ns);

void hs_event_header(const void* evt, hs_evt_hdr* out);
void* hs_event_copy(const void* evt, uint32_t len);
void hs_event_patch(void* evt, uint64_t ts, uint64_t tid, uint32_t plugin_id);
void* hs_event_build(uint64_t ts, uint32_t plugin_id, const void* data, uint32_t datalen);
uint32_t hs_u32_at(const void* base, size_t off);

uint64_t hs_malloc_in_use(void);

void hs_sigurg_record(void);
int hs_sigurg_rechain(void);
const char* hs_sig_owner(int sig);

/* Offsets/sizes of our declarations, compared against the SDK headers by
 * TestABILayout. Returns the number of entries written (<= max). */
size_t hs_layout(uint64_t* out, size_t max);

#endif
