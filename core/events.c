/* SPDX-License-Identifier: MIT */
#include "events.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define MEV_MAX_LISTENERS 8

/* One recorded event, path and detail in the same allocation. Reference
 * counted because a listener call runs outside the lock while other emitters
 * may already be overwriting the slot that holds it. */
struct ev_rec {
	atomic_uint refs;
	uint64_t seq;
	enum mev_op op;
	size_t path_len, detail_len, origin_len;
	char *detail; /* into text, or NULL */
	char *origin; /* into text, or NULL: this node's */
	char text[];  /* path NUL [detail NUL] [origin NUL] */
};

/* The node whose change this thread is applying (mev_set_origin). */
static __thread const char *tl_origin;

void mev_set_origin(const char *node)
{
	tl_origin = node;
}

struct ev_listener {
	mev_listener_fn fn;
	void *arg;
};

struct mev_ring {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* broadcast on every emit */
	struct ev_rec **slots;
	size_t capacity;
	uint64_t next_seq; /* seq s lives in slots[(s - 1) % capacity] */
	struct ev_listener listeners[MEV_MAX_LISTENERS];
	size_t nlisteners;
	/* Events the readers of the feed lost, summed over every reader: each
	 * "overflow" line stands for the events its reader skips. */
	uint64_t lost;
	size_t calling;      /* emitters running listener calls */
	pthread_cond_t idle; /* signalled when calling drops to 0 */
};

static const char *const op_names[MEV_OP_COUNT_] = {
        [MEV_CREATE] = "create",
        [MEV_WRITE] = "write",
        [MEV_DELETE] = "delete",
        [MEV_MKDIR] = "mkdir",
        [MEV_RMDIR] = "rmdir",
        [MEV_RENAME] = "rename",
        [MEV_RECONFIGURE] = "reconfigure",
        [MEV_RESTART] = "restart",
        [MEV_STATUS] = "status",
        [MEV_REGISTER] = "register",
        [MEV_UNREGISTER] = "unregister",
        [MEV_PLUGIN_ADD] = "plugin-add",
        [MEV_PLUGIN_DEL] = "plugin-del",
        [MEV_RESYNC] = "resync",
};

const char *mev_op_name(enum mev_op op)
{
	if ((unsigned)op >= MEV_OP_COUNT_)
		return "unknown";
	return op_names[op];
}

static void rec_unref(struct ev_rec *rec)
{
	if (rec && atomic_fetch_sub_explicit(&rec->refs, 1, memory_order_acq_rel) == 1)
		free(rec);
}

/* A newline inside a name would forge a line of the feed. */
static void copy_line_safe(char *dst, const char *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = src[i] == '\n' ? ' ' : src[i];
	dst[len] = '\0';
}

static struct ev_rec *rec_new(enum mev_op op, const char *path, const char *detail)
{
	const char *origin = tl_origin;
	size_t path_len = strlen(path);
	size_t detail_len = detail ? strlen(detail) : 0;
	size_t origin_len = origin ? strlen(origin) : 0;
	size_t extra = (detail ? detail_len + 1 : 0) + (origin ? origin_len + 1 : 0);
	if (path_len > SIZE_MAX / 4 || detail_len > SIZE_MAX / 4 || origin_len > SIZE_MAX / 4)
		return NULL;
	struct ev_rec *rec = malloc(sizeof(*rec) + path_len + 1 + extra);
	if (!rec)
		return NULL;
	atomic_init(&rec->refs, 1);
	rec->seq = 0;
	rec->op = op;
	rec->path_len = path_len;
	rec->detail_len = detail_len;
	rec->origin_len = origin_len;
	copy_line_safe(rec->text, path, path_len);
	char *p = rec->text + path_len + 1;
	rec->detail = NULL;
	if (detail) {
		rec->detail = p;
		copy_line_safe(rec->detail, detail, detail_len);
		p += detail_len + 1;
	}
	rec->origin = NULL;
	if (origin) {
		rec->origin = p;
		copy_line_safe(rec->origin, origin, origin_len);
	}
	return rec;
}

struct mev_ring *mev_ring_new(size_t capacity)
{
	if (capacity == 0)
		capacity = 1;
	struct mev_ring *ring = calloc(1, sizeof(*ring));
	if (!ring)
		return NULL;
	ring->slots = calloc(capacity, sizeof(*ring->slots));
	if (!ring->slots)
		goto err_ring;
	if (pthread_mutex_init(&ring->lock, NULL) != 0)
		goto err_slots;

	pthread_condattr_t attr;
	if (pthread_condattr_init(&attr) != 0)
		goto err_mutex;
	/* Timeouts must not jump with the wall clock. */
	int r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(&ring->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (r != 0)
		goto err_mutex;
	pthread_cond_init(&ring->idle, NULL);

	ring->capacity = capacity;
	ring->next_seq = 1;
	return ring;

err_mutex:
	pthread_mutex_destroy(&ring->lock);
err_slots:
	free(ring->slots);
err_ring:
	free(ring);
	return NULL;
}

void mev_ring_free(struct mev_ring *ring)
{
	if (!ring)
		return;
	for (size_t i = 0; i < ring->capacity; i++)
		rec_unref(ring->slots[i]);
	free(ring->slots);
	pthread_cond_destroy(&ring->idle);
	pthread_cond_destroy(&ring->cond);
	pthread_mutex_destroy(&ring->lock);
	free(ring);
}

/* Listeners are meant to be added at setup, before events flow: one added
 * while other threads emit sees only the events emitted after it was added,
 * and its calls may come in a different order from their seqs (each emitting
 * thread calls listeners itself). */
int mev_ring_add_listener(struct mev_ring *ring, mev_listener_fn fn, void *arg)
{
	if (!ring || !fn)
		return -EINVAL;
	int r = 0;
	pthread_mutex_lock(&ring->lock);
	if (ring->nlisteners == MEV_MAX_LISTENERS)
		r = -ENOSPC;
	else
		ring->listeners[ring->nlisteners++] = (struct ev_listener){fn, arg};
	pthread_mutex_unlock(&ring->lock);
	return r;
}

int mev_ring_remove_listener(struct mev_ring *ring, mev_listener_fn fn, void *arg)
{
	if (!ring)
		return -EINVAL;
	int r = -ENOENT;
	pthread_mutex_lock(&ring->lock);
	for (size_t i = 0; i < ring->nlisteners; i++) {
		if (ring->listeners[i].fn == fn && ring->listeners[i].arg == arg) {
			memmove(&ring->listeners[i], &ring->listeners[i + 1],
			        (ring->nlisteners - i - 1) * sizeof(ring->listeners[0]));
			ring->nlisteners--;
			r = 0;
			break;
		}
	}
	/* Calls already copied out may still run: wait for them to end. */
	while (ring->calling > 0)
		pthread_cond_wait(&ring->idle, &ring->lock);
	pthread_mutex_unlock(&ring->lock);
	return r;
}

uint64_t mev_emit(struct mev_ring *ring, enum mev_op op, const char *path, const char *detail)
{
	if (!ring)
		return 0;
	if ((unsigned)op >= MEV_OP_COUNT_ || !path)
		return 0;
	/* Built before taking the lock: emitters hold it only to link a slot. */
	struct ev_rec *rec = rec_new(op, path, detail);
	if (!rec) {
		mu_log(MU_LOG_WARNING, "events: out of memory, %s %s not recorded", mev_op_name(op),
		       path);
		return 0;
	}

	struct ev_listener listeners[MEV_MAX_LISTENERS];
	pthread_mutex_lock(&ring->lock);
	/* After the unlock rec may already be overwritten and freed, unless a
	 * listener call holds a reference: nothing reads it without one. */
	uint64_t seq = rec->seq = ring->next_seq++;
	size_t nlisteners = ring->nlisteners;
	memcpy(listeners, ring->listeners, nlisteners * sizeof(*listeners));
	if (nlisteners) {
		atomic_fetch_add_explicit(&rec->refs, 1, memory_order_relaxed);
		ring->calling++;
	}
	struct ev_rec **slot = &ring->slots[(rec->seq - 1) % ring->capacity];
	struct ev_rec *old = *slot;
	*slot = rec;
	pthread_cond_broadcast(&ring->cond);
	pthread_mutex_unlock(&ring->lock);

	rec_unref(old);
	if (nlisteners) {
		struct mev ev = {seq, op, rec->text, rec->detail, rec->origin};
		for (size_t i = 0; i < nlisteners; i++)
			listeners[i].fn(&ev, listeners[i].arg);
		rec_unref(rec);
		pthread_mutex_lock(&ring->lock);
		if (--ring->calling == 0)
			pthread_cond_broadcast(&ring->idle);
		pthread_mutex_unlock(&ring->lock);
	}
	return seq;
}

uint64_t mev_emitf(struct mev_ring *ring, enum mev_op op, const char *path, const char *fmt, ...)
{
	if (!ring)
		return 0;
	if (!fmt)
		return mev_emit(ring, op, path, NULL);
	struct mu_buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	int r = mu_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	uint64_t seq = 0;
	if (r == 0) {
		char *detail = mu_buf_steal(&b, NULL);
		if (detail)
			seq = mev_emit(ring, op, path, detail);
		free(detail);
	} else {
		mu_log(MU_LOG_WARNING, "events: out of memory, %s %s not recorded", mev_op_name(op),
		       path ? path : "");
	}
	mu_buf_free(&b);
	return seq;
}

uint64_t mev_ring_next_seq(struct mev_ring *ring)
{
	if (!ring)
		return 1;
	pthread_mutex_lock(&ring->lock);
	uint64_t seq = ring->next_seq;
	pthread_mutex_unlock(&ring->lock);
	return seq;
}

static uint64_t oldest_seq(const struct mev_ring *ring)
{
	return ring->next_seq > ring->capacity ? ring->next_seq - ring->capacity : 1;
}

/* Appends "SEQ OP PATH[ DETAIL][ node=ORIGIN]\n" when it fits whole in
 * buf[*pos..len); rec NULL: "SEQ OP\n". */
static bool put_line(char *buf, size_t len, size_t *pos, uint64_t seq, const char *op,
                     const struct ev_rec *rec)
{
	static const char tag[] = " node=";
	const char *path = rec ? rec->text : NULL, *detail = rec ? rec->detail : NULL;
	const char *origin = rec ? rec->origin : NULL;
	size_t path_len = rec ? rec->path_len : 0, detail_len = rec ? rec->detail_len : 0;
	size_t origin_len = rec ? rec->origin_len : 0;
	char num[24];
	size_t num_len = (size_t)snprintf(num, sizeof(num), "%" PRIu64, seq);
	size_t op_len = strlen(op);
	size_t need = num_len + 1 + op_len + 1;
	if (path)
		need += path_len + 1;
	if (detail)
		need += detail_len + 1;
	if (origin)
		need += sizeof(tag) - 1 + origin_len;
	if (need > len - *pos)
		return false;

	char *p = buf + *pos;
	memcpy(p, num, num_len);
	p += num_len;
	*p++ = ' ';
	memcpy(p, op, op_len);
	p += op_len;
	if (path) {
		*p++ = ' ';
		memcpy(p, path, path_len);
		p += path_len;
	}
	if (detail) {
		*p++ = ' ';
		memcpy(p, detail, detail_len);
		p += detail_len;
	}
	if (origin) {
		memcpy(p, tag, sizeof(tag) - 1);
		p += sizeof(tag) - 1;
		memcpy(p, origin, origin_len);
		p += origin_len;
	}
	*p = '\n';
	*pos += need;
	return true;
}

ssize_t mev_ring_read(struct mev_ring *ring, uint64_t *cursor, char *buf, size_t len)
{
	if (!ring || !cursor || (!buf && len))
		return -EINVAL;
	size_t pos = 0;
	ssize_t r;

	pthread_mutex_lock(&ring->lock);
	uint64_t cur = *cursor ? *cursor : 1; /* no event has seq 0 */
	if (cur < oldest_seq(ring)) {
		if (!put_line(buf, len, &pos, cur, "overflow", NULL)) {
			r = -ENOSPC;
			goto out;
		}
		ring->lost += ring->next_seq - cur; /* it goes on from the newest */
		*cursor = ring->next_seq;
		r = (ssize_t)pos;
		goto out;
	}
	while (cur < ring->next_seq) {
		const struct ev_rec *rec = ring->slots[(cur - 1) % ring->capacity];
		if (!put_line(buf, len, &pos, rec->seq, mev_op_name(rec->op), rec))
			break;
		cur++;
	}
	if (pos == 0 && cur < ring->next_seq) {
		r = -ENOSPC;
		goto out;
	}
	if (cur > *cursor)
		*cursor = cur;
	r = (ssize_t)pos;
out:
	pthread_mutex_unlock(&ring->lock);
	return r;
}

ssize_t mev_ring_resume(struct mev_ring *ring, uint64_t seq, uint64_t *cursor, char *buf,
                        size_t len)
{
	if (!ring || !cursor || (!buf && len) || seq == UINT64_MAX)
		return -EINVAL;
	size_t pos = 0;
	ssize_t r = 0;
	pthread_mutex_lock(&ring->lock);
	uint64_t oldest = oldest_seq(ring);
	if (seq + 1 >= oldest) {
		*cursor = seq + 1;
	} else if (put_line(buf, len, &pos, seq + 1, "overflow", NULL)) {
		ring->lost += oldest - (seq + 1);
		*cursor = oldest;
		r = (ssize_t)pos;
	} else {
		r = -ENOSPC;
	}
	pthread_mutex_unlock(&ring->lock);
	return r;
}

void mev_ring_counts(struct mev_ring *ring, uint64_t *ret_recorded, uint64_t *ret_lost)
{
	*ret_recorded = *ret_lost = 0;
	if (!ring)
		return;
	pthread_mutex_lock(&ring->lock);
	*ret_recorded = ring->next_seq - 1;
	*ret_lost = ring->lost;
	pthread_mutex_unlock(&ring->lock);
}

int mev_ring_wait(struct mev_ring *ring, uint64_t cursor, int timeout_ms)
{
	if (!ring)
		return -EINVAL;
	if (cursor == 0)
		cursor = 1;
	struct timespec deadline;
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}

	pthread_mutex_lock(&ring->lock);
	int r = 1;
	while (ring->next_seq <= cursor) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&ring->cond, &ring->lock);
		} else if (pthread_cond_timedwait(&ring->cond, &ring->lock, &deadline) ==
		           ETIMEDOUT) {
			r = ring->next_seq > cursor;
			break;
		}
	}
	pthread_mutex_unlock(&ring->lock);
	return r;
}
