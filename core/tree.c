/* SPDX-License-Identifier: MIT */
#include "tree.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

const struct mtree_entry mtree[] = {
        [MTREE_SERVICES] = {"services", false, true},
        [MTREE_REGISTRY] = {"registry", false, true},
        [MTREE_CONFIG] = {"config", false, true},
        [MTREE_EVENTS] = {"events", false, false},
        [MTREE_METRICS] = {"metrics", false, false},
        [MTREE_CLUSTER] = {"cluster", false, true},
        [MTREE_STORE] = {"store", true, true},
        [MTREE_PLUGINS] = {"plugins", true, true},
        [MTREE_SVC_CONFIG] = {"config", true, true},
        [MTREE_CONFIG_INI] = {"config.ini", true, false},
        [MTREE_CHAIN] = {"chain", true, false},
        [MTREE_STATUS] = {"status", true, false},
};

/* A name added to the enum but not here would shorten the table (when last)
 * or leave a NULL name (the unit test checks every entry). */
_Static_assert(MU_ARRAY_SIZE(mtree) == MTREE_COUNT_, "mtree[] must match enum mtree_name");

int mtree_lookup(const char *name, bool in_service)
{
	for (size_t i = 0; i < MTREE_COUNT_; i++)
		if (mtree[i].in_service == in_service && strcmp(mtree[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

bool mtree_service_reserved(const char *name)
{
	return mtree_lookup(name, true) >= 0;
}

int mtree_join(char *buf, size_t len, const char *first, ...)
{
	size_t n = 0;
	int r = 0;
	va_list ap;

	if (len == 0)
		return -ENAMETOOLONG;
	va_start(ap, first);
	for (const char *s = first; s; s = va_arg(ap, const char *)) {
		size_t sep = n ? 1 : 0, slen = strlen(s);
		if (sep + slen >= len - n) {
			r = -ENAMETOOLONG;
			break;
		}
		if (sep)
			buf[n++] = '/';
		memcpy(buf + n, s, slen);
		n += slen;
	}
	va_end(ap);
	buf[n] = '\0';
	return r;
}
