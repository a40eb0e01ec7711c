/* SPDX-License-Identifier: MIT */
/* systemd's notify protocol as mount/sdnotify.c speaks it: the test binds
 * the socket $NOTIFY_SOCKET names (an abstract one, then a path) and reads
 * what each msd_ call sends. The reload messages the SIGHUP handler sends
 * (RELOADING=1 with MONOTONIC_USEC=, then READY=1), a status that tries to
 * add a field, a background child's MAINPID=, many threads at once, and the
 * summary line. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "builtin.h"
#include "nodecfg.h"
#include "runtime.h"
#include "sdnotify.h"

static int listener = -1;
static char sock_path[PATH_MAX / 2];

/* Binds a datagram socket at name ("@..." abstract, or a path) and points
 * $NOTIFY_SOCKET at it, then msd_init. */
static void listen_at(const char *name)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	assert_true(n < sizeof(a.sun_path));
	memcpy(a.sun_path, name, n);
	if (name[0] == '@')
		a.sun_path[0] = '\0';
	if (listener >= 0)
		close(listener);
	listener = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(listener >= 0);
	assert_int_equal(
	        bind(listener, (struct sockaddr *)&a,
	             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'))),
	        0);
	struct timeval tv = {5, 0};
	assert_int_equal(setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
	msd_init();
	assert_null(getenv("NOTIFY_SOCKET"));
}

/* The next datagram, NUL-terminated in buf. */
static const char *next(char *buf, size_t len)
{
	ssize_t n = recv(listener, buf, len - 1, 0);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* Nothing more is waiting. */
static void nothing_more(void)
{
	char c;
	assert_int_equal(recv(listener, &c, 1, MSG_DONTWAIT), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static uint64_t now_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void test_messages(void **state)
{
	char buf[4096], name[64];
	snprintf(name, sizeof(name), "@mallafs-unit-sdnotify-%ld", (long)getpid());
	listen_at(name);

	msd_ready("mounted on /m: 1 service, 0 apps");
	assert_string_equal(next(buf, sizeof(buf)),
	                    "READY=1\nSTATUS=mounted on /m: 1 service, 0 apps\n");
	msd_status("reloading %s", "/etc/x.ini");
	assert_string_equal(next(buf, sizeof(buf)), "STATUS=reloading /etc/x.ini\n");
	msd_stopping();
	assert_string_equal(next(buf, sizeof(buf)), "STOPPING=1\n");

	/* The reload: RELOADING=1 with the monotonic clock, in microseconds. */
	uint64_t before = now_usec();
	msd_reloading();
	uint64_t after = now_usec();
	unsigned long long usec = 0;
	int end = 0;
	next(buf, sizeof(buf));
	assert_int_equal(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu\n%n", &usec, &end), 1);
	assert_int_equal((size_t)end, strlen(buf));
	assert_true(usec >= before && usec <= after);
	msd_ready(NULL);
	assert_string_equal(next(buf, sizeof(buf)), "READY=1\n");

	/* A newline in a status (a mountpoint may hold one) adds no field. */
	msd_status("a\nREADY=1\rSTOPPING=1");
	assert_string_equal(next(buf, sizeof(buf)), "STATUS=a READY=1 STOPPING=1\n");
	msd_ready("/m\nSTOPPING=1");
	assert_string_equal(next(buf, sizeof(buf)), "READY=1\nSTATUS=/m STOPPING=1\n");

	/* A status longer than a message holds is cut, still one line. */
	char *longs = malloc(10000);
	assert_non_null(longs);
	memset(longs, 'x', 9999);
	longs[9999] = '\0';
	longs[5000] = '\n';
	msd_ready(longs);
	next(buf, sizeof(buf));
	assert_true(strncmp(buf, "READY=1\nSTATUS=xxx", 18) == 0);
	assert_int_equal(buf[strlen(buf) - 1], '\n');
	assert_ptr_equal(strchr(buf + strlen("READY=1\n"), '\n'), buf + strlen(buf) - 1);
	msd_status("%s", longs);
	next(buf, sizeof(buf));
	assert_true(strncmp(buf, "STATUS=xxx", 10) == 0);
	assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
	free(longs);
	nothing_more();
}

/* The background child is not the process that read the socket: it says
 * MAINPID=, first, as systemd must learn who the main process is. */
static void test_child(void **state)
{
	char buf[512], want[128];
	snprintf(buf, sizeof(buf), "%s/mallafs-unit-sdnotify-%ld.sock",
	         getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
	snprintf(sock_path, sizeof(sock_path), "%s", buf);
	unlink(sock_path);
	listen_at(sock_path);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		msd_ready("child");
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	snprintf(want, sizeof(want), "MAINPID=%ld\nREADY=1\nSTATUS=child\n", (long)pid);
	assert_string_equal(next(buf, sizeof(buf)), want);
	msd_ready("parent");
	assert_string_equal(next(buf, sizeof(buf)), "READY=1\nSTATUS=parent\n");
	nothing_more();
	unlink(sock_path);
}

#define THREADS 8
#define ROUNDS 50

static void *notifier(void *arg)
{
	for (int i = 0; i < ROUNDS; i++) {
		msd_reloading();
		msd_ready("again");
	}
	return NULL;
}

/* Any thread may call: each message arrives whole. */
static void test_threads(void **state)
{
	char buf[512], name[64];
	snprintf(name, sizeof(name), "@mallafs-unit-sdnotify-threads-%ld", (long)getpid());
	listen_at(name);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, notifier, NULL), 0);
	int reloading = 0, ready = 0;
	for (int i = 0; i < THREADS * ROUNDS * 2; i++) {
		next(buf, sizeof(buf));
		if (strcmp(buf, "READY=1\nSTATUS=again\n") == 0)
			ready++;
		else if (strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0)
			reloading++;
		else
			fail_msg("unexpected message %s", buf);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(ready, THREADS * ROUNDS);
	assert_int_equal(reloading, THREADS * ROUNDS);
	nothing_more();
}

/* Without a socket, or with one that is no path and no @name, nothing is
 * sent and nothing fails. */
static void test_no_socket(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	msd_init();
	msd_ready("x");
	msd_stopping();
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	msd_init();
	assert_null(getenv("NOTIFY_SOCKET"));
	msd_ready("x");
	msd_reloading();
}

static void test_summary(void **state)
{
	struct mrt_options o = {
	        .builtins = mallafs_builtin_plugins,
	        .plugin_dir = getenv("MALLAFS_TEST_PLUGIN_DIR"),
	        .event_capacity = 256,
	};
	struct mrt *rt = mrt_new(&o);
	assert_non_null(rt);
	char buf[256];
	msd_summary(rt, "/run/mallafs", buf, sizeof(buf));
	assert_string_equal(buf, "mounted on /run/mallafs: 0 services, 0 apps");
	assert_int_equal(mrt_service_create(rt, "api", NULL), 0);
	assert_int_equal(mnodecfg_app_create(mrt_nodecfg(rt), "my_app"), 0);
	msd_summary(rt, "/m", buf, sizeof(buf));
	assert_string_equal(buf, "mounted on /m: 1 service, 1 app");
	assert_int_equal(mrt_service_create(rt, "web", NULL), 0);
	assert_int_equal(mrt_service_create(rt, "batch", NULL), 0);
	assert_int_equal(mnodecfg_app_create(mrt_nodecfg(rt), "other"), 0);
	msd_summary(rt, "/m", buf, sizeof(buf));
	assert_string_equal(buf, "mounted on /m: 3 services, 2 apps");
	/* Cut to the buffer, always terminated. */
	msd_summary(rt, "/m", buf, 8);
	assert_string_equal(buf, "mounted");
	mrt_stop_all(rt);
	mrt_free(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_messages), cmocka_unit_test(test_child),
	        cmocka_unit_test(test_threads),  cmocka_unit_test(test_no_socket),
	        cmocka_unit_test(test_summary),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	if (listener >= 0)
		close(listener);
	return r;
}
