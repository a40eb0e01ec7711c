/* SPDX-License-Identifier: MIT */
/* The cluster as etcd tells it (cluster mode, issue 15): what the read-only
 * folder cluster/ shows. The cluster engine is its only writer: it sets the
 * text of cluster/status, and puts and removes the live nodes and the
 * status text of each of their services. Nothing here knows etcd.
 *
 * Paths in events: "cluster/status" (MEV_WRITE when its text changes),
 * "cluster/nodes/NODE" (MEV_MKDIR, MEV_RMDIR) and
 * "cluster/nodes/NODE/SERVICE" (MEV_CREATE, MEV_WRITE when its text
 * changes, MEV_DELETE). A node that goes takes its services: an event per
 * service, then the node's.
 *
 * Bounds: node and service names follow the strict name rules
 * (mu_name_check_str, MU_NAME_STRICT: -EINVAL), a text is at most
 * MCLVIEW_TEXT_MAX bytes (-EFBIG), a mode has no bits past 07777
 * (-EINVAL); a refusal changes nothing and says why in the log.
 *
 * Ids: every node and service put gets an id of its own, never 0, never
 * reused in the view's life (a node or service that goes and comes back
 * has a new one); versions come from one counter of the view and change
 * with a text, never with a put that changes nothing.
 *
 * Locks: one rwlock, read for lookups, reads and listings, written for
 * changes; writers go first (readers of cluster/ in a loop cannot hold
 * the engine back). Events are emitted with the write lock held, so the feed has the
 * order of the changes: the event ring's lock (a leaf) and the listeners'
 * come after it. Listing callbacks run under the read lock and must not
 * call into the view. */
#ifndef MALLAFS_CORE_CLVIEW_H
#define MALLAFS_CORE_CLVIEW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kv.h"

/* The longest text of cluster/status or of a service. */
#define MCLVIEW_TEXT_MAX ((size_t)64 << 10)

/* The names inside cluster/ (core/tree.h names cluster/ itself). */
#define MCLVIEW_STATUS "status"
#define MCLVIEW_NODES "nodes"

struct mev_ring;
struct mclview;

struct mclview *mclview_new(struct mev_ring *ring); /* ring may be NULL; NULL: out of memory */
void mclview_free(struct mclview *v);               /* accepts NULL */

/* cluster/status: the whole text, formatted by the engine. An event only
 * when the text changes. 0, -EFBIG, -ENOMEM. */
int mclview_set_status(struct mclview *v, const char *text, size_t len);
/* A copy of it (malloc'd, NUL after it; "" before the first set), and its
 * stat (id and version; mtime and ctime: its last change; cookie 0). */
int mclview_status(struct mclview *v, char **ret, size_t *ret_len, struct mkv_stat *ret_st);

/* A live node appears: 0 (also when it is there already: nothing
 * changes), -EINVAL. */
int mclview_node_put(struct mclview *v, const char *node);
/* It goes, with all its services: 0, -ENOENT. */
int mclview_node_remove(struct mclview *v, const char *node);
/* A node's stat: size is its number of services; mtime and ctime its last
 * change of them (or its arrival). -ENOENT. */
int mclview_node_stat(struct mclview *v, const char *node, struct mkv_stat *ret);
/* The nodes after the one whose cookie is after (0: from the start), in
 * cookie order, as mkv_list lists: a node there throughout comes exactly
 * once, and resuming costs O(1). fn's non-zero return stops and is
 * returned. */
int mclview_node_list(struct mclview *v, uint64_t after,
                      int (*fn)(const char *node, const struct mkv_stat *st, void *arg), void *arg);

/* Who owns a service, and its mode, on its node. */
struct mclview_owner {
	uid_t uid;
	gid_t gid;
	mode_t mode;
};

/* One service of a node: its status text and its owner. New (the node is
 * put first when absent), or changed: an event when it is new or its text
 * changed (an owner's change alone changes its ctime only). 0, -EINVAL,
 * -EFBIG, -ENOMEM. */
int mclview_service_put(struct mclview *v, const char *node, const char *svc, const char *text,
                        size_t len, uid_t uid, gid_t gid, mode_t mode);
/* It goes: 0, -ENOENT (no such node or service). */
int mclview_service_remove(struct mclview *v, const char *node, const char *svc);
/* Its stat (size: its text's; mtime: its text's last change; ctime: its
 * last change, owner's included) and owner, either may be NULL. -ENOENT. */
int mclview_service_stat(struct mclview *v, const char *node, const char *svc, struct mkv_stat *ret,
                         struct mclview_owner *ret_own);
/* A copy of its text (malloc'd, NUL after it) and its stat (may be NULL). */
int mclview_service_get(struct mclview *v, const char *node, const char *svc, char **ret,
                        size_t *ret_len, struct mkv_stat *ret_st);
/* A node's services after the one whose cookie is after, as
 * mclview_node_list lists nodes. -ENOENT when the node is not there. */
int mclview_service_list(struct mclview *v, const char *node, uint64_t after,
                         int (*fn)(const char *svc, const struct mkv_stat *st, void *arg),
                         void *arg);

#endif
