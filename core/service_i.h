/* What core/service.c and core/service_store.c share: the service object
 * and two helpers. Private to those two files; everything else goes through
 * service.h. The locks and what each guards are described in service.h. */
#ifndef MALLAFS_CORE_SERVICE_I_H
#define MALLAFS_CORE_SERVICE_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "service.h"

/* One plugin in one service's chain. */
struct minst {
	const struct mallafs_plugin *desc;
	void *state;
	bool active; /* started: its store hooks run (base: always) */
	bool base;
};

struct mallafs_svc {
	char *name;
	uint64_t id;
	struct msvc_env env;
	atomic_uint refs;

	pthread_mutex_t op_lock;
	/* op_lock: the declared plugins (top to bottom, base not included) and
	 * whether the plugins are started. */
	char **declared;
	size_t ndeclared;
	bool started;

	pthread_rwlock_t store_lock;
	/* store_lock (written with op_lock held too, so op_lock holders may read) */
	struct mkv *kv;
	struct minst **chain; /* [0] is the top, [nchain - 1] is base */
	size_t nchain;
	bool dead;

	pthread_mutex_t state_lock;
	/* state_lock (written with op_lock held too) */
	struct mallafs_cfg *cfg; /* committed explicit configuration */
	struct msvc_status st;
};

/* "services/NAME", then sub and name when given (NULL ends the path). */
void msvc_path(const struct mallafs_svc *svc, char *buf, size_t len, const char *sub,
               const char *name);
/* A refused or failed operation: the reason goes to status and the log.
 * Takes state_lock: call it with store_lock released. */
void msvc_set_error(struct mallafs_svc *svc, const char *reason);

#endif
