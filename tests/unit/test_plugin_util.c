/* SPDX-License-Identifier: MIT */
/* Unit tests of plugins/plugin_util.c: the helpers the built-in plugins share. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin_util.h"

struct seen {
	char name[16];
	sigset_t mask;
};

static void *look(void *arg)
{
	struct seen *s = arg;
	pthread_getname_np(pthread_self(), s->name, sizeof(s->name));
	pthread_sigmask(SIG_SETMASK, NULL, &s->mask);
	return NULL;
}

/* The thread is named, starts with the daemon's signals blocked, and the
 * caller's own mask is left as it was. */
static void test_thread_start(void **state)
{
	struct seen s = {{0}};
	sigset_t before, after;
	pthread_t t;

	pthread_sigmask(SIG_SETMASK, NULL, &before);
	assert_int_equal(pu_thread_start(&t, "mallafs-test", look, &s), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_sigmask(SIG_SETMASK, NULL, &after);

	assert_string_equal(s.name, "mallafs-test");
	int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGCHLD, SIGALRM};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		assert_int_equal(sigismember(&s.mask, sigs[i]), 1);
		assert_int_equal(sigismember(&after, sigs[i]), sigismember(&before, sigs[i]));
	}

	/* A name past the kernel's 15 bytes is cut, not refused. */
	assert_int_equal(pu_thread_start(&t, "mallafs-persist-long", look, &s), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_string_equal(s.name, "mallafs-persist");
}

/* The user database's view of a user: root (in every passwd), a uid with no
 * entry (its gid alone, home "/"), and the groups left out when not asked. */
static void test_user_lookup(void **state)
{
	gid_t *g = NULL;
	size_t n = 0;
	char *home = NULL;
	assert_int_equal(pu_user_lookup(0, 0, &g, &n, &home), 0);
	assert_true(n >= 1);
	assert_int_equal(g[0], 0);
	assert_string_equal(home, "/root");
	free(g);
	free(home);

	g = NULL;
	home = NULL;
	assert_int_equal(pu_user_lookup(4242424, 4343, &g, &n, &home), 0);
	assert_int_equal(n, 1);
	assert_int_equal(g[0], 4343);
	assert_string_equal(home, "/");
	free(g);
	free(home);

	home = NULL;
	assert_int_equal(pu_user_lookup(0, 0, NULL, NULL, &home), 0);
	assert_string_equal(home, "/root");
	free(home);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_thread_start),
	        cmocka_unit_test(test_user_lookup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
