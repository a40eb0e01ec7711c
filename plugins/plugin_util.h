/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the built-in plugins, and by nothing else: they are
 * not part of the plugin API, so an external plugin cannot rely on them. Not
 * named util.h: plugins_dep puts this folder on the include path of fs/,
 * mount/ and the tests, where "util.h" must stay core's. */
#ifndef MALLAFS_PLUGINS_PLUGIN_UTIL_H
#define MALLAFS_PLUGINS_PLUGIN_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A short, printable excerpt of v (not NULL) for a reason line, in buf of
 * len bytes (at least 4): a value can hold newlines (config.ini
 * continuations) or other control characters that would break the log and
 * status lines, so each becomes '?', and a value cut short ends in "...".
 * Returns buf. */
const char *pu_excerpt(const char *v, char *buf, size_t len);

/* A setting's non-negative integer: digits only, no sign, no spaces, no
 * units, so that what `cat` shows is exactly what applies; leading zeros are
 * allowed. Returns 0 with *ret set, -EINVAL for NULL, an empty string or a
 * non-digit, -ERANGE when the value passes max; the first fault from the left
 * decides which. *ret is left untouched on failure. */
int pu_parse_uint(const char *s, uint64_t max, uint64_t *ret);

/* pthread_create for a plugin's own thread: it starts with every signal
 * blocked, so SIGINT and SIGTERM reach the daemon's threads that handle
 * them and never one that would leave the request loop running, and it is
 * named name ("mallafs-...", cut to the kernel's 15 bytes) for ps, top and
 * gdb before fn runs. Returns 0 or -errno. */
int pu_thread_start(pthread_t *ret, const char *name, void *(*fn)(void *arg), void *arg);

/* What the user database says of uid, for acting as a service's owner (exec
 * before it forks a hook, persist's thread): with ret_groups, its
 * supplementary groups with gid as the primary group, in the database's
 * order (malloc'd; gid alone when uid has no entry); with ret_home, its home
 * folder (malloc'd; "/" when it has none). Returns 0; -E2BIG when the user
 * has more groups than any kernel allows (NGROUPS_MAX); else -errno of the
 * lookup (-ENOMEM included). */
int pu_user_lookup(uid_t uid, gid_t gid, gid_t **ret_groups, size_t *ret_n, char **ret_home);

#endif
