/* SPDX-License-Identifier: MIT */
/* limits: caps the store. A write that would leave a value longer than
 * max_value_bytes, or a truncate that grows one past it, is refused with
 * EFBIG; a new key (write or create) when the store holds max_keys keys with
 * ENOSPC; a write, create, truncate or rename that would take the store's
 * bytes (names' and values' lengths, the daemon's count) past max_bytes
 * with ENOSPC. EFBIG is checked first. 0 means no limit. A rename never
 * adds a key, so max_keys never refuses one. Every setting applies live:
 * what is already over a lowered limit stays as it is (limits never
 * deletes); it can be read, renamed, deleted or truncated down, and written
 * again once the result fits. */
#include "builtin.h"
#include "plugin_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct limits {
	const struct mallafs_plugin *self;
	/* Read by store hooks under the store lock, written by start and
	 * updated, which do not hold it: hence atomics. */
	_Atomic uint64_t max_keys;
	_Atomic uint64_t max_value_bytes;
	_Atomic uint64_t max_bytes;
};

static const struct mallafs_setting limits_settings[] = {
        {.key = "max_bytes", .def = "0"},
        {.key = "max_keys", .def = "0"},
        {.key = "max_value_bytes", .def = "0"},
        {.key = NULL},
};

static int check_limit(const struct mallafs_cfg *cfg, const struct mallafs_plugin *self,
                       const char *key, uint64_t *ret, struct mallafs_reason *why)
{
	const char *v = mallafs_setting(cfg, self, key);
	char shown[48];
	/* At most 2^63 - 1: every caller can hold a limit in a signed 64-bit
	 * size as well. */
	int r = pu_parse_uint(v, (uint64_t)INT64_MAX, ret);
	if (r == -ERANGE)
		mallafs_reason_set(why, "%s must be at most %lld, not '%s'", key,
		                   (long long)INT64_MAX, pu_excerpt(v, shown, sizeof(shown)));
	else if (r < 0)
		mallafs_reason_set(why, "%s must be a non-negative integer, not '%s'", key,
		                   pu_excerpt(v ? v : "", shown, sizeof(shown)));
	if (r < 0)
		mallafs_reason_key(why, self->name, key);
	return r < 0 ? -EINVAL : 0;
}

struct known_ctx {
	const struct mallafs_setting *settings;
	struct mallafs_reason *why;
};

/* A misspelt key would otherwise be accepted and silently do nothing. */
static int check_known(const char *key, const char *value, void *arg)
{
	struct known_ctx *c = arg;
	char shown[48];
	for (const struct mallafs_setting *s = c->settings; s->key; s++)
		if (strcmp(s->key, key) == 0)
			return 0;
	mallafs_reason_set(c->why,
	                   "unknown setting '%s' (limits has max_bytes, max_keys and "
	                   "max_value_bytes)",
	                   pu_excerpt(key, shown, sizeof(shown)));
	mallafs_reason_key(c->why, NULL, key);
	return -EINVAL;
}

static int limits_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret_state)
{
	struct limits *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->self = self;
	atomic_init(&l->max_keys, 0);
	atomic_init(&l->max_value_bytes, 0);
	atomic_init(&l->max_bytes, 0);
	*ret_state = l;
	return 0;
}

static void limits_fini(void *state)
{
	free(state);
}

/* Reads every setting; on failure nothing is applied. */
static int apply(struct limits *l, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	uint64_t keys, value_bytes, bytes;
	int r = check_limit(cfg, l->self, "max_keys", &keys, why);
	if (r == 0)
		r = check_limit(cfg, l->self, "max_value_bytes", &value_bytes, why);
	if (r == 0)
		r = check_limit(cfg, l->self, "max_bytes", &bytes, why);
	if (r < 0)
		return r;
	atomic_store_explicit(&l->max_keys, keys, memory_order_relaxed);
	atomic_store_explicit(&l->max_value_bytes, value_bytes, memory_order_relaxed);
	atomic_store_explicit(&l->max_bytes, bytes, memory_order_relaxed);
	return 0;
}

static int limits_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	return apply(state, cfg, why);
}

static int limits_merge(void *state, const struct mallafs_cfg *old,
                        const struct mallafs_cfg *update, struct mallafs_cfg *merged,
                        struct mallafs_reason *why)
{
	struct limits *l = state;
	struct known_ctx c = {limits_settings, why};
	uint64_t v;
	int r = mallafs_cfg_foreach(merged, l->self->name, check_known, &c);
	if (r == 0)
		r = check_limit(merged, l->self, "max_keys", &v, why);
	if (r == 0)
		r = check_limit(merged, l->self, "max_value_bytes", &v, why);
	if (r == 0)
		r = check_limit(merged, l->self, "max_bytes", &v, why);
	return r;
}

static enum mallafs_update limits_updated(void *state, const struct mallafs_cfg *old,
                                          const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	/* Re-reading both is idempotent, so other sections' changes cost
	 * nothing and never restart the service. */
	return apply(state, cfg, why) < 0 ? MALLAFS_UPDATE_ERROR : MALLAFS_UPDATE_OK;
}

/* The value's length once the write is done; false when it does not fit in
 * 64 bits (a write at an absurd offset), which is over any limit. */
static bool size_after_write(const struct mallafs_store_op *op, uint64_t *ret)
{
	uint64_t old = op->old_size < 0 ? 0 : (uint64_t)op->old_size;
	uint64_t start = op->offset;
	bool replace = op->flags & MALLAFS_OPF_REPLACE;
	if ((op->flags & MALLAFS_OPF_APPEND) && !replace)
		start = old;
	if (start > UINT64_MAX - op->size)
		return false;
	uint64_t end = start + op->size;
	/* A put (zeros up to offset, then data) leaves exactly its end. */
	*ret = replace || end > old ? end : old;
	return true;
}

/* How many bytes (names' and values' lengths, as the store counts them) op
 * adds to the store; 0 when it adds none. */
static uint64_t growth(const struct mallafs_store_op *op)
{
	uint64_t klen = strlen(op->key), old = op->old_size < 0 ? 0 : (uint64_t)op->old_size;
	uint64_t size, name = op->old_size < 0 ? klen : 0;

	switch (op->code) {
	case MALLAFS_OP_WRITE:
		if (!size_after_write(op, &size))
			return UINT64_MAX;
		if (op->size == 0 && !(op->flags & MALLAFS_OPF_REPLACE))
			size = old; /* an empty write extends nothing */
		return name + (size > old ? size - old : 0);
	case MALLAFS_OP_CREATE:
		return name;
	case MALLAFS_OP_TRUNCATE:
		return op->old_size >= 0 && op->offset > old ? op->offset - old : 0;
	case MALLAFS_OP_RENAME: {
		if (op->old_size < 0 || strcmp(op->key, op->new_key) == 0)
			return 0;
		uint64_t in = strlen(op->new_key), out = klen;
		if (op->new_key_size >= 0)
			out += strlen(op->new_key) + (uint64_t)op->new_key_size;
		return in > out ? in - out : 0;
	}
	default:
		return 0;
	}
}

static int check_bytes(struct limits *l, struct mallafs_store_op *op)
{
	uint64_t max = atomic_load_explicit(&l->max_bytes, memory_order_relaxed);
	uint64_t grow = max ? growth(op) : 0;
	if (grow == 0 || (op->store_bytes <= max && grow <= max - op->store_bytes))
		return 0;
	if (grow == UINT64_MAX)
		mallafs_reason_set(op->why, "a write at offset %llu is over max_bytes %llu",
		                   (unsigned long long)op->offset, (unsigned long long)max);
	else
		mallafs_reason_set(op->why,
		                   "store holds %llu bytes, %llu more is over max_bytes %llu",
		                   (unsigned long long)op->store_bytes, (unsigned long long)grow,
		                   (unsigned long long)max);
	return -ENOSPC;
}

static int limits_before(void *state, struct mallafs_store_op *op)
{
	struct limits *l = state;
	uint64_t max_keys = atomic_load_explicit(&l->max_keys, memory_order_relaxed);
	uint64_t max_bytes = atomic_load_explicit(&l->max_value_bytes, memory_order_relaxed);
	uint64_t size;

	switch (op->code) {
	case MALLAFS_OP_WRITE:
		if (max_bytes > 0) {
			if (!size_after_write(op, &size)) {
				mallafs_reason_set(
				        op->why,
				        "a write at offset %llu is over max_value_bytes %llu",
				        (unsigned long long)op->offset,
				        (unsigned long long)max_bytes);
				return -EFBIG;
			}
			if (size > max_bytes) {
				mallafs_reason_set(
				        op->why, "value of %llu bytes is over max_value_bytes %llu",
				        (unsigned long long)size, (unsigned long long)max_bytes);
				return -EFBIG;
			}
		}
		break;
	case MALLAFS_OP_TRUNCATE:
		/* Shrinking is always allowed, so a value left over a lowered
		 * limit can still be cut down to size. */
		if (max_bytes > 0 && op->offset > max_bytes && op->old_size >= 0 &&
		    op->offset > (uint64_t)op->old_size) {
			mallafs_reason_set(
			        op->why, "value of %llu bytes is over max_value_bytes %llu",
			        (unsigned long long)op->offset, (unsigned long long)max_bytes);
			return -EFBIG;
		}
		return check_bytes(l, op);
	case MALLAFS_OP_CREATE:
		break;
	case MALLAFS_OP_RENAME:
		/* May replace a key, never adds one; a longer name may add bytes. */
		return check_bytes(l, op);
	default:
		/* Reads and deletes cannot break a limit. */
		return 0;
	}

	if (op->old_size < 0 && max_keys > 0 && op->nkeys >= max_keys) {
		mallafs_reason_set(op->why, "store holds %llu keys, max_keys is %llu",
		                   (unsigned long long)op->nkeys, (unsigned long long)max_keys);
		return -ENOSPC;
	}
	return check_bytes(l, op);
}

const struct mallafs_plugin mallafs_plugin_limits = {
        MALLAFS_PLUGIN_INIT,
        .name = "limits",
        .settings = limits_settings,
        /* lifecycle and configuration */
        .init = limits_init,
        .fini = limits_fini,
        .start = limits_start,
        .config_merge = limits_merge,
        .updated = limits_updated,
        /* store hooks */
        .store_before = limits_before,
};
