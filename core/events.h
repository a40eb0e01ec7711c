/* SPDX-License-Identifier: MIT */
/* Change events: every change core makes is recorded here as (operation,
 * path, detail) in a bounded ring. Writers never wait for readers: the oldest
 * events are dropped when the ring is full, and a reader that had not read
 * them is told once with an "overflow" line. Thread-safe.
 *
 * Locks: one mutex per ring, a leaf: emitters hold it only to link a record
 * and copy the listener list, readers to copy lines out. Listeners are
 * called outside it but under whatever the emitter holds (a service's
 * op_lock and store_lock, the registry's or the config store's lock), which
 * is why a listener must not block or call back into core. */
#ifndef MALLAFS_CORE_EVENTS_H
#define MALLAFS_CORE_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum mev_op {
	MEV_CREATE = 0,
	MEV_WRITE,
	MEV_DELETE,
	MEV_MKDIR,
	MEV_RMDIR,
	MEV_RENAME,
	MEV_RECONFIGURE,
	MEV_RESTART,
	MEV_STATUS,
	MEV_REGISTER,
	MEV_UNREGISTER,
	MEV_PLUGIN_ADD,
	MEV_PLUGIN_DEL,
	MEV_RESYNC, /* cluster mode: the mirror was listed again ("cluster") */
	MEV_OP_COUNT_,
};

/* "create", "write", ..., "plugin-del". */
const char *mev_op_name(enum mev_op op);

/* One event as a listener sees it; the strings live only for the call. */
struct mev {
	uint64_t seq; /* 1, 2, 3, ... */
	enum mev_op op;
	const char *path;   /* relative to the mount, e.g. "services/api/store/k" */
	const char *detail; /* may be NULL; for a rename, the new path */
	const char *origin; /* NULL for this node's changes; else the node's name */
};

struct mev_ring;

/* capacity: events kept (at least 1). */
struct mev_ring *mev_ring_new(size_t capacity);
void mev_ring_free(struct mev_ring *ring); /* accepts NULL */

/* Called synchronously by every mev_emit(), after the event is recorded and
 * outside the ring's lock, in the emitting thread. It must not block and must
 * not call back into core (it may enqueue). At most 8 listeners (the
 * daemon uses 4: owners and modes, the notifier, the feed, the state). */
typedef void (*mev_listener_fn)(const struct mev *ev, void *arg);
int mev_ring_add_listener(struct mev_ring *ring, mev_listener_fn fn, void *arg);
/* Removes a listener and waits until no call to any listener is running, so
 * its arg may be freed afterwards. Never call it from a listener. -ENOENT. */
int mev_ring_remove_listener(struct mev_ring *ring, mev_listener_fn fn, void *arg);

/* Cluster mode: the events this thread emits until it is called again with
 * NULL are another node's change, applied here (the feed's line ends with
 * " node=NODE"). node must live until then. */
void mev_set_origin(const char *node);
/* Records an event and returns its seq (0 when ring is NULL: core modules may
 * run without a ring in unit tests). path and detail are copied. */
uint64_t mev_emit(struct mev_ring *ring, enum mev_op op, const char *path, const char *detail);
uint64_t mev_emitf(struct mev_ring *ring, enum mev_op op, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* The seq the next event will get: where a reader opened now starts. */
uint64_t mev_ring_next_seq(struct mev_ring *ring);

/* Formats, for a reader whose next wanted seq is *cursor, as many whole lines
 * "SEQ OP PATH[ DETAIL][ node=NODE]\n" as fit in buf, and advances *cursor past them.
 * When events at *cursor were already dropped, the first line is
 * "SEQ overflow\n" (SEQ being *cursor) and the reader goes on from the newest
 * events (*cursor jumps to mev_ring_next_seq()). Returns the bytes written, 0
 * when nothing is new, -ENOSPC when even the first line does not fit in len. */
ssize_t mev_ring_read(struct mev_ring *ring, uint64_t *cursor, char *buf, size_t len);

/* A reader that handled every event up to seq (0: none) resumes after it:
 * *cursor becomes seq + 1, and 0 is returned, when that event is still kept
 * or is yet to come (reads then wait for it). When it was dropped already,
 * the "SEQ overflow\n" line (SEQ being seq + 1, the first event lost) is
 * written to buf, *cursor becomes the oldest event kept, so that the reader
 * loses no more than it must, and the line's length is returned; -ENOSPC
 * when it does not fit in len, -EINVAL when seq + 1 would not be a seq. */
ssize_t mev_ring_resume(struct mev_ring *ring, uint64_t seq, uint64_t *cursor, char *buf,
                        size_t len);

/* Events recorded so far, and events readers lost: the sum, over every
 * "overflow" line mev_ring_read and mev_ring_resume gave, of the events
 * that reader skips because of it (dropped from the ring before it read
 * them, and, for mev_ring_read, those it jumps over to the newest). */
void mev_ring_counts(struct mev_ring *ring, uint64_t *ret_recorded, uint64_t *ret_lost);

/* Waits until an event with seq >= cursor exists, or timeout_ms passes
 * (negative: no limit). 1 when there is something to read, 0 on timeout. */
int mev_ring_wait(struct mev_ring *ring, uint64_t cursor, int timeout_ms);

#endif
