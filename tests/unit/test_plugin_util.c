/* Unit tests of plugins/plugin_util.c: the helpers the built-in plugins share. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_thread_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
