// C side of the triage test harness. See harness.h.

#define _GNU_SOURCE
#include "harness.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

/* ---- loading ------------------------------------------------------------ */

void* hs_dlsym(void* dl, const char* name) {
	return dl ? dlsym(dl, name) : NULL;
}

int hs_load(const char* path, hs_api* api, char* err, size_t errlen) {
	memset(api, 0, sizeof(*api));
	dlerror(); /* clear stale state; dlerror is per-thread and we stay on one */
	void* dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		const char* e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return -1;
	}
	api->dl = dl;
#define HS_SYM(field, name) *(void**)(&api->field) = dlsym(dl, name)
	HS_SYM(get_required_api_version, "plugin_get_required_api_version");
	HS_SYM(get_version, "plugin_get_version");
	HS_SYM(get_name, "plugin_get_name");
	HS_SYM(get_description, "plugin_get_description");
	HS_SYM(get_contact, "plugin_get_contact");
	HS_SYM(get_id, "plugin_get_id");
	HS_SYM(get_event_source, "plugin_get_event_source");
	HS_SYM(get_init_schema, "plugin_get_init_schema");
	HS_SYM(get_fields, "plugin_get_fields");
	HS_SYM(get_extract_event_sources, "plugin_get_extract_event_sources");
	HS_SYM(get_extract_event_types, "plugin_get_extract_event_types");
	HS_SYM(init, "plugin_init");
	HS_SYM(destroy, "plugin_destroy");
	HS_SYM(get_last_error, "plugin_get_last_error");
	HS_SYM(open, "plugin_open");
	HS_SYM(close, "plugin_close");
	HS_SYM(next_batch, "plugin_next_batch");
	HS_SYM(event_to_string, "plugin_event_to_string");
	HS_SYM(extract_fields, "plugin_extract_fields");
	HS_SYM(list_open_params, "plugin_list_open_params");
	HS_SYM(get_progress, "plugin_get_progress");
#undef HS_SYM
	dlerror(); /* missing optional symbols leave an error behind; drop it */
	/* Note: never dlclose'd. A Go c-shared library cannot be unloaded (its
	 * runtime threads keep running code from the mapping). */
	return 0;
}

const char* hs_call_str(const char* (*fn)(void)) {
	return fn ? fn() : NULL;
}

uint32_t hs_get_id(const hs_api* api) {
	return api->get_id ? api->get_id() : 0;
}

const char* hs_get_init_schema(const hs_api* api, int32_t* schema_type) {
	*schema_type = 0;
	if (!api->get_init_schema) {
		return NULL;
	}
	ss_plugin_schema_type t = 0;
	const char* s = api->get_init_schema(&t);
	*schema_type = t;
	return s;
}

uint16_t* hs_get_extract_event_types(const hs_api* api, uintptr_t s, uint32_t* n) {
	*n = 0;
	if (!api->get_extract_event_types) {
		return NULL;
	}
	return api->get_extract_event_types(n, (ss_plugin_t*)s);
}

/* ---- owner: last error, log buffer, table-API stubs ---------------------- */

#define HS_MAX_LOGS 4096

struct hs_owner {
	char lasterr[HS_MAX_ERRLEN];
	pthread_mutex_t mu;
	hs_log_entry* logs;
	size_t nlogs;
	uint64_t dropped;
};

hs_owner* hs_owner_new(void) {
	hs_owner* o = calloc(1, sizeof(*o));
	if (!o) {
		return NULL;
	}
	pthread_mutex_init(&o->mu, NULL);
	o->logs = calloc(HS_MAX_LOGS, sizeof(hs_log_entry));
	if (!o->logs) {
		free(o);
		return NULL;
	}
	return o;
}

void hs_free_logs(hs_log_entry* logs, size_t n) {
	for (size_t i = 0; i < n; i++) {
		free(logs[i].component);
		free(logs[i].msg);
	}
	free(logs);
}

void hs_owner_free(hs_owner* o) {
	if (!o) {
		return;
	}
	pthread_mutex_lock(&o->mu);
	for (size_t i = 0; i < o->nlogs; i++) {
		free(o->logs[i].component);
		free(o->logs[i].msg);
	}
	free(o->logs);
	pthread_mutex_unlock(&o->mu);
	pthread_mutex_destroy(&o->mu);
	free(o);
}

const char* hs_owner_last_error(hs_owner* o) {
	return o ? o->lasterr : "";
}

/* Hands the buffered entries to the caller (who frees them with
 * hs_free_logs) and starts a fresh buffer. */
size_t hs_owner_take_logs(hs_owner* o, hs_log_entry** out, uint64_t* dropped) {
	*out = NULL;
	*dropped = 0;
	hs_log_entry* fresh = calloc(HS_MAX_LOGS, sizeof(hs_log_entry));
	if (!fresh) {
		return 0;
	}
	pthread_mutex_lock(&o->mu);
	size_t n = o->nlogs;
	*out = o->logs;
	*dropped = o->dropped;
	o->logs = fresh;
	o->nlogs = 0;
	o->dropped = 0;
	pthread_mutex_unlock(&o->mu);
	return n;
}

static const char* hs_cb_get_owner_last_error(ss_plugin_owner_t* o) {
	return hs_owner_last_error((hs_owner*)o);
}

static void hs_set_owner_error(ss_plugin_owner_t* o, const char* msg) {
	if (o) {
		snprintf(((hs_owner*)o)->lasterr, HS_MAX_ERRLEN, "%s", msg);
	}
}

static void hs_cb_log(ss_plugin_owner_t* owner, const char* component, const char* msg,
                      ss_plugin_log_severity sev) {
	hs_owner* o = (hs_owner*)owner;
	if (!o) {
		return;
	}
	pthread_mutex_lock(&o->mu);
	if (o->nlogs >= HS_MAX_LOGS) {
		o->dropped++;
	} else {
		hs_log_entry* e = &o->logs[o->nlogs++];
		e->component = strdup(component ? component : "");
		e->msg = strdup(msg ? msg : "");
		e->sev = sev;
	}
	pthread_mutex_unlock(&o->mu);
}

/* The harness exposes no state tables. Falco would offer e.g. "threads";
 * here every lookup fails the way Falco's does for an unknown table (NULL and
 * an owner last error), so plugins that need tables fail loudly at init. */

static ss_plugin_table_info* hs_cb_list_tables(ss_plugin_owner_t* o, uint32_t* ntables) {
	(void)o;
	*ntables = 0;
	return NULL;
}

static ss_plugin_table_t* hs_cb_get_table(ss_plugin_owner_t* o, const char* name,
                                          ss_plugin_state_type key_type) {
	(void)key_type;
	char msg[HS_MAX_ERRLEN];
	snprintf(msg, sizeof(msg), "harness: state table '%s' not available", name ? name : "");
	hs_set_owner_error(o, msg);
	return NULL;
}

static ss_plugin_rc hs_cb_add_table(ss_plugin_owner_t* o, const ss_plugin_table_input* in) {
	(void)in;
	hs_set_owner_error(o, "harness: adding state tables is not supported");
	return HS_RC_FAILURE;
}

static const ss_plugin_table_fieldinfo* hs_cb_list_table_fields(ss_plugin_table_t* t, uint32_t* n) {
	(void)t;
	*n = 0;
	return NULL;
}

static ss_plugin_table_field_t* hs_cb_get_table_field(ss_plugin_table_t* t, const char* name,
                                                      ss_plugin_state_type dt) {
	(void)t;
	(void)name;
	(void)dt;
	return NULL;
}

static const char* hs_cb_get_table_name(ss_plugin_table_t* t) {
	(void)t;
	return "";
}

static uint64_t hs_cb_get_table_size(ss_plugin_table_t* t) {
	(void)t;
	return 0;
}

static ss_plugin_table_entry_t* hs_cb_get_table_entry(ss_plugin_table_t* t,
                                                      const ss_plugin_state_data* key) {
	(void)t;
	(void)key;
	return NULL;
}

static ss_plugin_rc hs_cb_read_entry_field(ss_plugin_table_t* t, ss_plugin_table_entry_t* e,
                                           const ss_plugin_table_field_t* f, ss_plugin_state_data* out) {
	(void)t;
	(void)e;
	(void)f;
	(void)out;
	return HS_RC_FAILURE;
}

static void hs_cb_release_table_entry(ss_plugin_table_t* t, ss_plugin_table_entry_t* e) {
	(void)t;
	(void)e;
}

static ss_plugin_bool hs_cb_iterate_entries(ss_plugin_table_t* t, ss_plugin_table_iterator_func_t it,
                                            ss_plugin_table_iterator_state_t* s) {
	(void)t;
	(void)it;
	(void)s;
	return 1; /* nothing to iterate: completed */
}

static ss_plugin_rc hs_cb_clear_table(ss_plugin_table_t* t) {
	(void)t;
	return HS_RC_FAILURE;
}

static ss_plugin_rc hs_cb_erase_table_entry(ss_plugin_table_t* t, const ss_plugin_state_data* key) {
	(void)t;
	(void)key;
	return HS_RC_FAILURE;
}

static ss_plugin_table_entry_t* hs_cb_create_table_entry(ss_plugin_table_t* t) {
	(void)t;
	return NULL;
}

static void hs_cb_destroy_table_entry(ss_plugin_table_t* t, ss_plugin_table_entry_t* e) {
	(void)t;
	(void)e;
}

static ss_plugin_table_entry_t* hs_cb_add_table_entry(ss_plugin_table_t* t, const ss_plugin_state_data* key,
                                                      ss_plugin_table_entry_t* entry) {
	(void)t;
	(void)key;
	(void)entry;
	return NULL;
}

static ss_plugin_rc hs_cb_write_entry_field(ss_plugin_table_t* t, ss_plugin_table_entry_t* e,
                                            const ss_plugin_table_field_t* f, const ss_plugin_state_data* in) {
	(void)t;
	(void)e;
	(void)f;
	(void)in;
	return HS_RC_FAILURE;
}

static ss_plugin_table_fields_vtable hs_fields_vt = {
    .list_table_fields = hs_cb_list_table_fields,
    .get_table_field = hs_cb_get_table_field,
    .add_table_field = hs_cb_get_table_field,
};

static ss_plugin_table_reader_vtable_ext hs_reader_ext_vt = {
    .get_table_name = hs_cb_get_table_name,
    .get_table_size = hs_cb_get_table_size,
    .get_table_entry = hs_cb_get_table_entry,
    .read_entry_field = hs_cb_read_entry_field,
    .release_table_entry = hs_cb_release_table_entry,
    .iterate_entries = hs_cb_iterate_entries,
};

static ss_plugin_table_writer_vtable_ext hs_writer_ext_vt = {
    .clear_table = hs_cb_clear_table,
    .erase_table_entry = hs_cb_erase_table_entry,
    .create_table_entry = hs_cb_create_table_entry,
    .destroy_table_entry = hs_cb_destroy_table_entry,
    .add_table_entry = hs_cb_add_table_entry,
    .write_entry_field = hs_cb_write_entry_field,
};

static void hs_fill_reader(ss_plugin_table_reader_vtable* r) {
	r->get_table_name = hs_cb_get_table_name;
	r->get_table_size = hs_cb_get_table_size;
	r->get_table_entry = hs_cb_get_table_entry;
	r->read_entry_field = hs_cb_read_entry_field;
}

/* Test hooks: call the callbacks the way a plugin would. */
void hs_test_log(hs_owner* o, const char* component, const char* msg, int32_t sev) {
	hs_cb_log((ss_plugin_owner_t*)o, component, msg, sev);
}

int hs_test_get_table(hs_owner* o, const char* name, const char** owner_err) {
	ss_plugin_table_t* t = hs_cb_get_table((ss_plugin_owner_t*)o, name, 9);
	*owner_err = hs_cb_get_owner_last_error((ss_plugin_owner_t*)o);
	return t != NULL;
}

/* ---- lifecycle trampolines ----------------------------------------------- */

uintptr_t hs_init(const hs_api* api, hs_owner* owner, const char* config, int with_tables, int32_t* rc) {
	ss_plugin_init_tables_input tables;
	memset(&tables, 0, sizeof(tables));
	tables.list_tables = hs_cb_list_tables;
	tables.get_table = hs_cb_get_table;
	tables.add_table = hs_cb_add_table;
	tables.fields = hs_fields_vt;
	tables.fields_ext = &hs_fields_vt;
	tables.reader_ext = &hs_reader_ext_vt;
	tables.writer_ext = &hs_writer_ext_vt;

	ss_plugin_init_input in;
	memset(&in, 0, sizeof(in));
	in.config = config;
	in.owner = (ss_plugin_owner_t*)owner;
	in.get_owner_last_error = hs_cb_get_owner_last_error;
	/* libsinsp offers tables only to plugins with parsing/extraction caps */
	in.tables = with_tables ? &tables : NULL;
	in.log_fn = hs_cb_log;

	/* Like libscap for open(): assume failure unless the plugin says otherwise. */
	ss_plugin_rc r = HS_RC_FAILURE;
	ss_plugin_t* s = api->init(&in, &r);
	*rc = r;
	return (uintptr_t)s;
}

void hs_destroy(const hs_api* api, uintptr_t s) {
	api->destroy((ss_plugin_t*)s);
}

const char* hs_get_last_error(const hs_api* api, uintptr_t s) {
	return api->get_last_error((ss_plugin_t*)s);
}

const char* hs_list_open_params(const hs_api* api, uintptr_t s, int32_t* rc) {
	ss_plugin_rc r = HS_RC_FAILURE;
	const char* res = api->list_open_params((ss_plugin_t*)s, &r);
	*rc = r;
	return res;
}

uintptr_t hs_open(const hs_api* api, uintptr_t s, const char* params, int32_t* rc) {
	ss_plugin_rc r = HS_RC_FAILURE; /* libscap does the same */
	ss_instance_t* h = api->open((ss_plugin_t*)s, params, &r);
	*rc = r;
	return (uintptr_t)h;
}

void hs_close(const hs_api* api, uintptr_t s, uintptr_t h) {
	api->close((ss_plugin_t*)s, (ss_instance_t*)h);
}

int32_t hs_next_batch(const hs_api* api, uintptr_t s, uintptr_t h, uint32_t* nevts, void*** evts) {
	ss_plugin_event** e = NULL;
	uint32_t n = 0;
	ss_plugin_rc r = api->next_batch((ss_plugin_t*)s, (ss_instance_t*)h, &n, &e);
	*nevts = n;
	*evts = (void**)e;
	return r;
}

const char* hs_get_progress(const hs_api* api, uintptr_t s, uintptr_t h, uint32_t* pct) {
	uint32_t p = 0;
	const char* res = api->get_progress((ss_plugin_t*)s, (ss_instance_t*)h, &p);
	*pct = p;
	return res;
}

const char* hs_event_to_string(const hs_api* api, uintptr_t s, const void* evt, uint64_t num,
                               const char* src) {
	ss_plugin_event_input in;
	in.evt = (const ss_plugin_event*)evt;
	in.evtnum = num;
	in.evtsrc = src;
	return api->event_to_string((ss_plugin_t*)s, &in);
}

int32_t hs_extract(const hs_api* api, uintptr_t s, hs_owner* owner, const void* evt, uint64_t num,
                   const char* src, uint32_t nfields, ss_plugin_extract_field* fields,
                   int want_offsets, uint32_t** off_start, uint32_t** off_length) {
	ss_plugin_event_input ev;
	ev.evt = (const ss_plugin_event*)evt;
	ev.evtnum = num;
	ev.evtsrc = src;

	ss_plugin_extract_value_offsets offs;
	offs.start = NULL; /* the API asks callers to pre-set these to NULL */
	offs.length = NULL;

	ss_plugin_field_extract_input in;
	memset(&in, 0, sizeof(in));
	in.owner = (ss_plugin_owner_t*)owner;
	in.get_owner_last_error = hs_cb_get_owner_last_error;
	in.num_fields = nfields;
	in.fields = fields;
	hs_fill_reader(&in.table_reader);
	in.table_reader_ext = &hs_reader_ext_vt;
	in.value_offsets = want_offsets ? &offs : NULL;

	ss_plugin_rc r = api->extract_fields((ss_plugin_t*)s, &ev, &in);
	if (off_start) {
		*off_start = offs.start;
	}
	if (off_length) {
		*off_length = offs.length;
	}
	return r;
}

/* Times `rounds` extract_fields calls made back to back from C, the way a
 * C++ host (Falco) makes them, so no Go-side harness work is counted. Round
 * r uses event r % nevts; with per_field every field is its own call
 * (num_fields = 1, like libsinsp's filterchecks), else one call asks for all
 * fields. Returns SUCCESS or the rc of the first failing call; the elapsed
 * monotonic time is stored in *elapsed_ns. */
int32_t hs_time_extract(const hs_api* api, uintptr_t s, hs_owner* owner, void* const* evts,
                        const uint64_t* nums, size_t nevts, const char* src, uint32_t nfields,
                        ss_plugin_extract_field* fields, int per_field, uint64_t rounds,
                        uint64_t* elapsed_ns) {
	ss_plugin_event_input ev;
	ev.evtsrc = src;
	ss_plugin_field_extract_input in;
	memset(&in, 0, sizeof(in));
	in.owner = (ss_plugin_owner_t*)owner;
	in.get_owner_last_error = hs_cb_get_owner_last_error;
	hs_fill_reader(&in.table_reader);
	in.table_reader_ext = &hs_reader_ext_vt;
	in.value_offsets = NULL;

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ss_plugin_rc r = HS_RC_SUCCESS;
	for (uint64_t k = 0; k < rounds && r == HS_RC_SUCCESS; k++) {
		ev.evt = (const ss_plugin_event*)evts[k % nevts];
		ev.evtnum = nums[k % nevts];
		if (per_field) {
			for (uint32_t f = 0; f < nfields && r == HS_RC_SUCCESS; f++) {
				in.num_fields = 1;
				in.fields = &fields[f];
				r = api->extract_fields((ss_plugin_t*)s, &ev, &in);
			}
		} else {
			in.num_fields = nfields;
			in.fields = fields;
			r = api->extract_fields((ss_plugin_t*)s, &ev, &in);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*elapsed_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
	return r;
}

/* ---- event helpers -------------------------------------------------------- */

void hs_event_header(const void* evt, hs_evt_hdr* out) {
	ss_plugin_event h;
	memcpy(&h, evt, sizeof(h));
	out->ts = h.ts;
	out->tid = h.tid;
	out->len = h.len;
	out->type = h.type;
	out->nparams = h.nparams;
}

void* hs_event_copy(const void* evt, uint32_t len) {
	void* p = malloc(len);
	if (p) {
		memcpy(p, evt, len);
	}
	return p;
}

uint32_t hs_u32_at(const void* base, size_t off) {
	uint32_t v;
	memcpy(&v, (const char*)base + off, sizeof(v));
	return v;
}

void hs_event_patch(void* evt, uint64_t ts, uint64_t tid, uint32_t plugin_id) {
	ss_plugin_event h;
	memcpy(&h, evt, sizeof(h));
	h.ts = ts;
	h.tid = tid;
	memcpy(evt, &h, sizeof(h));
	memcpy((char*)evt + sizeof(ss_plugin_event) + 8, &plugin_id, sizeof(plugin_id));
}

/* | header (26) | len(plugin id)=4 (u32) | len(data) (u32) | plugin id (u32) | data | */
void* hs_event_build(uint64_t ts, uint32_t plugin_id, const void* data, uint32_t datalen) {
	size_t total = sizeof(ss_plugin_event) + 4 + 4 + 4 + (size_t)datalen;
	char* p = malloc(total);
	if (!p) {
		return NULL;
	}
	ss_plugin_event h;
	h.ts = ts;
	h.tid = UINT64_MAX;
	h.len = (uint32_t)total;
	h.type = 322;
	h.nparams = 2;
	memcpy(p, &h, sizeof(h));
	uint32_t l0 = 4;
	memcpy(p + sizeof(h), &l0, 4);
	memcpy(p + sizeof(h) + 4, &datalen, 4);
	memcpy(p + sizeof(h) + 8, &plugin_id, 4);
	if (datalen) {
		memcpy(p + sizeof(h) + 12, data, datalen);
	}
	return p;
}

/* ---- layout self-description ----------------------------------------------- */

#define HS_PUT(v)                  \
	do {                           \
		if (n < max) {             \
			out[n] = (uint64_t)(v); \
		}                          \
		n++;                       \
	} while (0)

size_t hs_layout(uint64_t* out, size_t max) {
	size_t n = 0;
	HS_PUT(sizeof(ss_plugin_event));
	HS_PUT(offsetof(ss_plugin_event, ts));
	HS_PUT(offsetof(ss_plugin_event, tid));
	HS_PUT(offsetof(ss_plugin_event, len));
	HS_PUT(offsetof(ss_plugin_event, type));
	HS_PUT(offsetof(ss_plugin_event, nparams));
	HS_PUT(sizeof(ss_plugin_event_input));
	HS_PUT(offsetof(ss_plugin_event_input, evt));
	HS_PUT(offsetof(ss_plugin_event_input, evtnum));
	HS_PUT(offsetof(ss_plugin_event_input, evtsrc));
	HS_PUT(sizeof(ss_plugin_byte_buffer));
	HS_PUT(offsetof(ss_plugin_byte_buffer, ptr));
	HS_PUT(sizeof(ss_plugin_extract_value_offsets));
	HS_PUT(sizeof(ss_plugin_extract_field));
	HS_PUT(offsetof(ss_plugin_extract_field, res));
	HS_PUT(offsetof(ss_plugin_extract_field, res_len));
	HS_PUT(offsetof(ss_plugin_extract_field, field_id));
	HS_PUT(offsetof(ss_plugin_extract_field, field));
	HS_PUT(offsetof(ss_plugin_extract_field, arg_key));
	HS_PUT(offsetof(ss_plugin_extract_field, arg_index));
	HS_PUT(offsetof(ss_plugin_extract_field, arg_present));
	HS_PUT(offsetof(ss_plugin_extract_field, ftype));
	HS_PUT(offsetof(ss_plugin_extract_field, flist));
	HS_PUT(sizeof(ss_plugin_state_data));
	HS_PUT(sizeof(ss_plugin_table_info));
	HS_PUT(sizeof(ss_plugin_table_fieldinfo));
	HS_PUT(sizeof(ss_plugin_table_fields_vtable));
	HS_PUT(sizeof(ss_plugin_table_reader_vtable));
	HS_PUT(sizeof(ss_plugin_table_reader_vtable_ext));
	HS_PUT(sizeof(ss_plugin_table_writer_vtable));
	HS_PUT(sizeof(ss_plugin_table_input));
	HS_PUT(sizeof(ss_plugin_init_tables_input));
	HS_PUT(offsetof(ss_plugin_init_tables_input, fields));
	HS_PUT(offsetof(ss_plugin_init_tables_input, fields_ext));
	HS_PUT(offsetof(ss_plugin_init_tables_input, reader_ext));
	HS_PUT(offsetof(ss_plugin_init_tables_input, writer_ext));
	HS_PUT(sizeof(ss_plugin_init_input));
	HS_PUT(offsetof(ss_plugin_init_input, config));
	HS_PUT(offsetof(ss_plugin_init_input, owner));
	HS_PUT(offsetof(ss_plugin_init_input, get_owner_last_error));
	HS_PUT(offsetof(ss_plugin_init_input, tables));
	HS_PUT(offsetof(ss_plugin_init_input, log_fn));
	HS_PUT(sizeof(ss_plugin_field_extract_input));
	HS_PUT(offsetof(ss_plugin_field_extract_input, owner));
	HS_PUT(offsetof(ss_plugin_field_extract_input, get_owner_last_error));
	HS_PUT(offsetof(ss_plugin_field_extract_input, num_fields));
	HS_PUT(offsetof(ss_plugin_field_extract_input, fields));
	HS_PUT(offsetof(ss_plugin_field_extract_input, table_reader));
	HS_PUT(offsetof(ss_plugin_field_extract_input, table_reader_ext));
	HS_PUT(offsetof(ss_plugin_field_extract_input, value_offsets));
	return n;
}

/* Bytes currently malloc'ed in the process (all arenas); test-only leak probe. */
uint64_t hs_malloc_in_use(void) {
	struct mallinfo2 mi = mallinfo2();
	return (uint64_t)mi.uordblks;
}

/* ---- SIGURG chaining (two Go runtimes) ------------------------------------
 *
 * Go uses SIGURG for asynchronous preemption. A Go c-shared library installs
 * its own SIGURG handler during its runtime init (sigInstallGoHandler allows
 * sigPreempt for c-shared), replacing the host Go runtime's handler, and it
 * does not forward SIGURG to the previous handler. Result: the host test
 * binary can no longer async-preempt its goroutines, and a GC stop-the-world
 * waits forever on any goroutine spinning without a preemption point.
 *
 * Each Go runtime's handler ignores a SIGURG that arrives on a thread where
 * that runtime is not running Go code (no g of its own, or an extra M back
 * in C), so calling all of them in turn is safe: at most one acts. We keep
 * the handler found before the first dlopen (the host's) plus every handler
 * a library installs, and install a trampoline calling them all. The
 * trampoline is installed with the flags/mask the library's runtime used.
 */

typedef void (*hs_sa_fn)(int, siginfo_t*, void*);

#define HS_MAX_CHAIN 16
static hs_sa_fn hs_urg_chain[HS_MAX_CHAIN];
static int hs_urg_n; /* published with release semantics */
static pthread_mutex_t hs_sig_mu = PTHREAD_MUTEX_INITIALIZER;

static void hs_urg_trampoline(int sig, siginfo_t* info, void* ctx) {
	int n = __atomic_load_n(&hs_urg_n, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++) {
		hs_urg_chain[i](sig, info, ctx);
	}
}

static int hs_chain_add_locked(const struct sigaction* sa) {
	if (!(sa->sa_flags & SA_SIGINFO)) {
		return 0; /* SIG_DFL / SIG_IGN / non-siginfo handler: nothing to chain */
	}
	hs_sa_fn fn = sa->sa_sigaction;
	if (fn == NULL || fn == hs_urg_trampoline) {
		return 0;
	}
	int n = hs_urg_n;
	for (int i = 0; i < n; i++) {
		if (hs_urg_chain[i] == fn) {
			return 0;
		}
	}
	if (n >= HS_MAX_CHAIN) {
		return -1;
	}
	hs_urg_chain[n] = fn;
	__atomic_store_n(&hs_urg_n, n + 1, __ATOMIC_RELEASE);
	return 1;
}

/* Record the current (host) SIGURG handler; call before the first dlopen. */
void hs_sigurg_record(void) {
	struct sigaction sa;
	pthread_mutex_lock(&hs_sig_mu);
	if (sigaction(SIGURG, NULL, &sa) == 0) {
		hs_chain_add_locked(&sa);
	}
	pthread_mutex_unlock(&hs_sig_mu);
}

/* Send SIGURG to every thread of the process. Needed after re-installing
 * the trampoline: Go's preemptM only signals an M whose m.signalPending is
 * 0, and only that runtime's own handler resets it. A SIGURG the host sent
 * while the library's handler alone was installed was swallowed, leaving
 * that M's signalPending stuck at 1: the host would never signal it again
 * and its goroutines could never be async-preempted. One more SIGURG per
 * thread, now through the trampoline, lets each runtime acknowledge it.
 * Spurious SIGURGs are harmless by design (Go documents that it must
 * tolerate them). */
static void hs_sigurg_broadcast(void) {
	DIR* d = opendir("/proc/self/task");
	if (!d) {
		return;
	}
	pid_t pid = getpid();
	struct dirent* e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9') {
			continue;
		}
		pid_t tid = (pid_t)atoi(e->d_name);
		syscall(SYS_tgkill, pid, tid, SIGURG);
	}
	closedir(d);
}

/* If someone (a library's Go runtime) replaced our trampoline, add their
 * handler to the chain, put the trampoline back and broadcast SIGURG (see
 * above). Returns 1 if it changed something, 0 if not, -1 on error. */
int hs_sigurg_rechain(void) {
	struct sigaction cur;
	int rc = 0;
	pthread_mutex_lock(&hs_sig_mu);
	if (sigaction(SIGURG, NULL, &cur) != 0) {
		rc = -1;
	} else if (!((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == hs_urg_trampoline)) {
		if (hs_urg_n == 0 || !(cur.sa_flags & SA_SIGINFO)) {
			rc = 0; /* nothing recorded, or nothing worth chaining */
		} else if (hs_chain_add_locked(&cur) < 0) {
			rc = -1;
		} else {
			struct sigaction tr = cur;
			tr.sa_sigaction = hs_urg_trampoline;
			tr.sa_flags |= SA_SIGINFO | SA_ONSTACK;
			rc = sigaction(SIGURG, &tr, NULL) == 0 ? 1 : -1;
		}
	}
	pthread_mutex_unlock(&hs_sig_mu);
	if (rc == 1) {
		hs_sigurg_broadcast();
	}
	return rc;
}

/* Diagnostics: the object file owning the current handler of sig. */
const char* hs_sig_owner(int sig) {
	struct sigaction sa;
	if (sigaction(sig, NULL, &sa) != 0) {
		return "?";
	}
	void* fn = (sa.sa_flags & SA_SIGINFO) ? (void*)sa.sa_sigaction : (void*)sa.sa_handler;
	if (fn == (void*)SIG_DFL) {
		return "SIG_DFL";
	}
	if (fn == (void*)SIG_IGN) {
		return "SIG_IGN";
	}
	if (fn == (void*)hs_urg_trampoline) {
		return "harness-trampoline";
	}
	Dl_info info;
	if (dladdr(fn, &info) && info.dli_fname) {
		return info.dli_fname;
	}
	return "?";
}
