/* SPDX-License-Identifier: MIT */
/* systemd's notify protocol and journal priorities (sdnotify.h).
 *
 * The protocol's few lines, not libsystemd: its sd_notify reads
 * $NOTIFY_SOCKET at each call, and the daemon removes it from its
 * environment at start. Each message goes out on a socket of its own, so
 * the calls share nothing but the address, written once by msd_init before
 * any thread exists.
 *
 * Locks: journal.lock guards the stderr stream's "at the start of a line"
 * (stdio's own lock already serialises writers of one stream, but
 * ThreadSanitizer does not see it); it is taken inside stdio's, and under
 * mu_log's mutex when mu_log writes, and nothing is called under it but
 * write(2). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "nodecfg.h"
#include "runtime.h"
#include "sdnotify.h"
#include "util.h"

static struct {
	struct sockaddr_un addr;
	socklen_t addr_len; /* 0: no $NOTIFY_SOCKET, every call does nothing */
	pid_t pid;          /* msd_init's: another one is the background child */
} notify;

/* At most this long a message waits for room in the listener's queue. */
#define MSD_SEND_TIMEOUT_MS 1000

/* "@name" (abstract) or an absolute path; anything else is ignored, as
 * sd_notify does, with a warning. */
static void notify_init(void)
{
	const char *s = getenv("NOTIFY_SOCKET");
	notify.pid = getpid();
	if (!s)
		return;
	size_t n = strlen(s);
	if ((s[0] != '@' && s[0] != '/') || n < 2 || n > sizeof(notify.addr.sun_path)) {
		mu_log(MU_LOG_WARNING,
		       "NOTIFY_SOCKET=%s: not an absolute path or an @name: ignored", s);
	} else {
		notify.addr.sun_family = AF_UNIX;
		memcpy(notify.addr.sun_path, s, n);
		/* An abstract name starts with a NUL and is exactly n bytes;
		 * a path is NUL-terminated when there is room. */
		if (s[0] == '@')
			notify.addr.sun_path[0] = '\0';
		notify.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
		                              (s[0] == '/' && n < sizeof(notify.addr.sun_path)));
	}
	unsetenv("NOTIFY_SOCKET");
}

static void notify_send(const char *msg)
{
	if (!notify.addr_len)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		mu_log(MU_LOG_WARNING, "systemd notify: socket: %s", strerror(errno));
		return;
	}
	struct timeval tv = {MSD_SEND_TIMEOUT_MS / 1000, (MSD_SEND_TIMEOUT_MS % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&notify.addr,
	           notify.addr_len) < 0) {
		int e = errno;
		/* The first line names the message: READY=1, STOPPING=1... */
		mu_log(MU_LOG_WARNING, "systemd notify: cannot send %.*s: %s",
		       (int)strcspn(msg, "\n"), msg, strerror(e));
	}
	close(fd);
}

/* Appends "NAME=VALUE\n" with the value on one line: a newline in it (a
 * mountpoint may hold one) must not add a field. */
static void field(char *buf, size_t len, const char *name, const char *value)
{
	size_t at = strlen(buf);
	int n = snprintf(buf + at, len - at, "%s=%s\n", name, value);
	if (n < 0)
		return;
	size_t end = at + (size_t)n < len ? at + (size_t)n : len - 1;
	for (size_t i = at + strlen(name) + 1; i + 1 < end; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[end - 1] = '\n';
}

void msd_ready(const char *status)
{
	char msg[2048] = "", pid[32];
	if (getpid() != notify.pid) {
		snprintf(pid, sizeof(pid), "%ld", (long)getpid());
		field(msg, sizeof(msg), "MAINPID", pid);
	}
	field(msg, sizeof(msg), "READY", "1");
	if (status)
		field(msg, sizeof(msg), "STATUS", status);
	notify_send(msg);
}

void msd_status(const char *fmt, ...)
{
	char status[1024], msg[1100] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(status, sizeof(status), fmt, ap);
	va_end(ap);
	field(msg, sizeof(msg), "STATUS", status);
	notify_send(msg);
}

void msd_reloading(void)
{
	struct timespec ts;
	char msg[128] = "", usec[32];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(usec, sizeof(usec), "%llu",
	         (unsigned long long)ts.tv_sec * 1000000ULL +
	                 (unsigned long long)ts.tv_nsec / 1000);
	field(msg, sizeof(msg), "RELOADING", "1");
	field(msg, sizeof(msg), "MONOTONIC_USEC", usec);
	notify_send(msg);
}

void msd_stopping(void)
{
	notify_send("STOPPING=1\n");
}

static int count_service(const char *name, uint64_t cookie, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

static int count_app(const char *app, const struct mkv_stat *st, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

void msd_summary(struct mrt *rt, const char *mountpoint, char *buf, size_t len)
{
	size_t services = 0, apps = 0;
	mrt_service_list(rt, 0, count_service, &services);
	mnodecfg_app_list(mrt_nodecfg(rt), 0, count_app, &apps);
	snprintf(buf, len, "mounted on %s: %zu service%s, %zu app%s", mountpoint, services,
	         services == 1 ? "" : "s", apps, apps == 1 ? "" : "s");
}

/* -- journal priorities ------------------------------------------------------ */

static struct {
	pthread_mutex_t lock;
	bool line_start;
} journal = {PTHREAD_MUTEX_INITIALIZER, true};

/* True when fd 2 is the stream $JOURNAL_STREAM ("DEVICE:INODE") names:
 * systemd sets it for a service's stderr, and a child that redirected its
 * stderr elsewhere inherits the variable but not the stream. */
static bool stderr_is_journal(void)
{
	const char *s = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	char end;
	struct stat st;
	if (!s || sscanf(s, "%llu:%llu%c", &dev, &ino, &end) != 2)
		return false;
	return fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

static void write_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere left to say so */
		p += w;
		n -= (size_t)w;
	}
}

static bool has_priority(const char *p, size_t n)
{
	return n >= 3 && p[0] == '<' && p[1] >= '0' && p[1] <= '7' && p[2] == '>';
}

/* The stream that replaces stderr: each line that does not start with a
 * priority gets <3>. mu_log's lines come with theirs (mu_log_set_priorities). */
static ssize_t journal_write(void *cookie, const char *buf, size_t size)
{
	pthread_mutex_lock(&journal.lock);
	for (size_t at = 0; at < size;) {
		const char *nl = memchr(buf + at, '\n', size - at);
		size_t n = nl ? (size_t)(nl - (buf + at)) + 1 : size - at;
		if (journal.line_start && !has_priority(buf + at, n))
			write_all("<3>", 3);
		write_all(buf + at, n);
		journal.line_start = nl != NULL;
		at += n;
	}
	pthread_mutex_unlock(&journal.lock);
	return (ssize_t)size;
}

static bool journal_init(void)
{
	if (!stderr_is_journal())
		return false;
	cookie_io_functions_t io = {.write = journal_write};
	FILE *f = fopencookie(NULL, "w", io);
	if (!f || setvbuf(f, NULL, _IOLBF, BUFSIZ) != 0) {
		if (f)
			fclose(f);
		mu_log_set_priorities(true);
		return true;
	}
	fflush(stderr);
	stderr = f;
	mu_log_set_priorities(true);
	return true;
}

bool msd_init(void)
{
	bool journal_on = journal_init();
	notify_init();
	return journal_on;
}
