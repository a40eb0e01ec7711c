/* SPDX-License-Identifier: MIT */
/* watchprobe: what a watcher of the mount sees, for test_watch.sh: inotify
 * events, poll() wake-ups and the events feed, each with a deadline so that
 * a change that never comes fails a check instead of hanging the test.
 *
 *     watchprobe inotify [-c] [-T] [-t MAX_MS] SILENCE_MS PATH... [-- CMD...]
 *         watches each PATH (IN_ALL_EVENTS; with -c only changes, not
 *         opens, reads and closes without a write), runs CMD when given and waits
 *         for it, then prints every event as "PATH EVENTS[ NAME]" (PATH as
 *         given, EVENTS like MODIFY or CREATE,ISDIR) until SILENCE_MS pass
 *         without one; with -T each line starts with the milliseconds since
 *         CMD ended (or since the watches were set). After MAX_MS in all
 *         (default 20000) it prints "deadline" and stops.
 *     watchprobe poll TIMEOUT_MS PATH [-- CMD...]
 *         opens PATH, reads it to EOF, runs CMD in the background and polls
 *         for POLLPRI|POLLERR; prints "woken revents=... ms=N" or "timeout".
 *         Once CMD has ended, re-reads PATH from offset 0 (pread), polls
 *         again for 100 ms and prints "again: timeout" (or what woke it),
 *         then what the re-read gave.
 *     watchprobe feed-nonblock PATH
 *         reads the feed opened with O_NONBLOCK, then opened blocking and
 *         switched with fcntl; prints "open: EAGAIN" and "fcntl: EAGAIN"
 *         (or what read() gave).
 *     watchprobe feed-poll TIMEOUT_MS PATH [-- CMD...]
 *         opens the feed, prints what an immediate poll(POLLIN) says
 *         ("before: none" or "before: revents=..."), runs CMD in the
 *         background, polls for POLLIN and prints "woken revents=... ms=N"
 *         or "timeout", then the lines of one read().
 *     watchprobe feed-read FD SILENCE_MS
 *         reads the feed open on FD (inherited from the shell) until
 *         SILENCE_MS pass with nothing to read; prints the lines read. Every
 *         read() must return whole lines.
 *     watchprobe write-loop PATH N PREFIX
 *         N times: opens PATH as `>` does, writes "PREFIX<i>\n" (i from 1 to
 *         N) in one write(), closes; a burst the shell would be slow at.
 *
 * A CMD runs with stdin from /dev/null and its stdout on our stderr.
 *
 * Exit status: 0 when the probe ran (whatever it saw), 1 on a failed system
 * call or a check (a partial line, a failed CMD), 2 on a usage error. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WATCHES 64
#define TEXT_MAX (1024 * 1024)
#define FEED_BUF (64 * 1024)
#define AGAIN_MS 100

static int usage(void)
{
	fprintf(stderr,
	        "usage: watchprobe inotify [-c] [-T] [-t MAX_MS] SILENCE_MS PATH... [-- CMD...]\n"
	        "       watchprobe poll TIMEOUT_MS PATH [-- CMD...]\n"
	        "       watchprobe feed-nonblock PATH\n"
	        "       watchprobe feed-poll TIMEOUT_MS PATH [-- CMD...]\n"
	        "       watchprobe feed-read FD SILENCE_MS\n"
	        "       watchprobe write-loop PATH N PREFIX\n");
	return 2;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool parse_int(const char *s, int min, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > INT_MAX)
		return false;
	*ret = (int)v;
	return true;
}

/* Starts argv (NULL-terminated) with stdin from /dev/null and its output on
 * our stderr, out of the way of what we print. Its pid, or -1. */
static pid_t spawn(char **argv)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("watchprobe: fork");
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			close(null);
		}
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execvp(argv[0], argv);
		fprintf(stderr, "watchprobe: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Waits for a spawned command: 0 when it exited 0, else 1 (and says why). */
static int reap(pid_t pid, const char *name)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			perror("watchprobe: waitpid");
			return 1;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		fprintf(stderr, "watchprobe: %s exited with status %d\n", name, WEXITSTATUS(st));
	else
		fprintf(stderr, "watchprobe: %s killed by signal %d\n", name, WTERMSIG(st));
	return 1;
}

/* Splits "ARGS... [-- CMD...]": returns the index of CMD's first word, argc
 * when there is none, -1 for a "--" with nothing after it; *nargs gets the
 * count of ARGS. */
static int split_cmd(int argc, char **argv, int first, int *nargs)
{
	int i;

	for (i = first; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			*nargs = i - first;
			return i + 1 < argc ? i + 1 : -1;
		}
	}
	*nargs = argc - first;
	return argc;
}

static void print_revents(short re)
{
	static const struct {
		short bit;
		const char *name;
	} names[] = {
	        {POLLIN, "POLLIN"},         {POLLPRI, "POLLPRI"},       {POLLOUT, "POLLOUT"},
	        {POLLERR, "POLLERR"},       {POLLHUP, "POLLHUP"},       {POLLNVAL, "POLLNVAL"},
	        {POLLRDNORM, "POLLRDNORM"}, {POLLWRNORM, "POLLWRNORM"},
	};
	bool first = true;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (re & names[i].bit) {
			printf("%s%s", first ? "" : "|", names[i].name);
			first = false;
		}
	}
	if (first)
		printf("0");
}

/* ---- inotify ---- */

static void print_mask(uint32_t mask)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
	        {IN_ACCESS, "ACCESS"},
	        {IN_MODIFY, "MODIFY"},
	        {IN_ATTRIB, "ATTRIB"},
	        {IN_CLOSE_WRITE, "CLOSE_WRITE"},
	        {IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
	        {IN_OPEN, "OPEN"},
	        {IN_MOVED_FROM, "MOVED_FROM"},
	        {IN_MOVED_TO, "MOVED_TO"},
	        {IN_CREATE, "CREATE"},
	        {IN_DELETE, "DELETE"},
	        {IN_DELETE_SELF, "DELETE_SELF"},
	        {IN_MOVE_SELF, "MOVE_SELF"},
	        {IN_UNMOUNT, "UNMOUNT"},
	        {IN_Q_OVERFLOW, "Q_OVERFLOW"},
	        {IN_IGNORED, "IGNORED"},
	        {IN_ISDIR, "ISDIR"},
	};
	bool first = true;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (mask & names[i].bit) {
			printf("%s%s", first ? "" : ",", names[i].name);
			first = false;
		}
	}
	if (first)
		printf("0x%x", mask);
}

static int cmd_inotify(int argc, char **argv)
{
	char *paths[MAX_WATCHES];
	int wds[MAX_WATCHES];
	int max_ms = 20000, silence, npaths, ncmd, i = 2, rc = 0;
	uint32_t mask = IN_ALL_EVENTS;
	bool stamp = false;
	pid_t child = -1;

	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			mask = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM |
			       IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;
		} else if (strcmp(argv[i], "-T") == 0) {
			stamp = true;
		} else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc &&
		           parse_int(argv[i + 1], 1, &max_ms)) {
			i++;
		} else {
			return usage();
		}
	}
	if (i >= argc || !parse_int(argv[i], 1, &silence))
		return usage();
	int cmd = split_cmd(argc, argv, i + 1, &npaths);
	if (cmd < 0 || npaths < 1 || npaths > MAX_WATCHES)
		return usage();
	ncmd = argc - cmd;

	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0) {
		perror("watchprobe: inotify_init1");
		return 1;
	}
	for (int k = 0; k < npaths; k++) {
		paths[k] = argv[i + 1 + k];
		wds[k] = inotify_add_watch(fd, paths[k], mask);
		if (wds[k] < 0) {
			fprintf(stderr, "watchprobe: watch %s: %s\n", paths[k], strerror(errno));
			close(fd);
			return 1;
		}
	}

	int64_t start = now_ms(), deadline = start + max_ms, last;
	if (ncmd > 0) {
		child = spawn(argv + cmd);
		if (child < 0) {
			close(fd);
			return 1;
		}
	}
	last = now_ms();
	for (;;) {
		char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
		int64_t t = now_ms();
		int wait_ms;

		if (child > 0) {
			int st;
			pid_t w = waitpid(child, &st, WNOHANG);

			if (w == child) {
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
					fprintf(stderr,
					        "watchprobe: the command failed (status 0x%x)\n",
					        st);
					rc = 1;
				}
				child = -1;
				start = last = t; /* silence counts from the command's end */
			}
		}
		if (t >= deadline) {
			printf("deadline\n");
			break;
		}
		if (child < 0 && t - last >= silence)
			break;
		wait_ms = child > 0 ? 20 : (int)(last + silence - t);
		if (wait_ms > deadline - t)
			wait_ms = (int)(deadline - t);
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int n = poll(&pfd, 1, wait_ms);
		if (n < 0 && errno != EINTR) {
			perror("watchprobe: poll");
			rc = 1;
			break;
		}
		if (n <= 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf));
		if (len < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			perror("watchprobe: read inotify");
			rc = 1;
			break;
		}
		last = now_ms();
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			const char *path = "?";

			for (int k = 0; k < npaths; k++)
				if (wds[k] == ev->wd)
					path = paths[k];
			if (stamp)
				printf("%lld ", (long long)(last - start));
			printf("%s ", path);
			print_mask(ev->mask);
			if (ev->len && ev->name[0])
				printf(" %s", ev->name);
			printf("\n");
			p += sizeof(*ev) + ev->len;
		}
		fflush(stdout);
	}
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		rc = 1;
	}
	close(fd);
	fflush(stdout);
	return rc;
}

/* ---- poll() on a file ---- */

/* Reads fd from offset 0 to EOF into a new buffer; its length or -errno. */
static ssize_t read_text(int fd, char **ret)
{
	size_t got = 0;
	char *buf = malloc(TEXT_MAX);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = pread(fd, buf + got, TEXT_MAX - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			free(buf);
			return n;
		}
		if (n == 0 || got + (size_t)n == TEXT_MAX) {
			got += (size_t)n;
			break;
		}
		got += (size_t)n;
	}
	*ret = buf;
	return (ssize_t)got;
}

static int cmd_poll(int argc, char **argv)
{
	int timeout, nargs, rc = 0;
	char *text = NULL;
	pid_t child = -1;

	if (argc < 4 || !parse_int(argv[2], 0, &timeout))
		return usage();
	int cmd = split_cmd(argc, argv, 3, &nargs);
	if (cmd < 0 || nargs != 1)
		return usage();
	const char *path = argv[3];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "watchprobe: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	/* sysfs's protocol: read first, then poll for a change since. */
	ssize_t len = read_text(fd, &text);
	if (len < 0) {
		fprintf(stderr, "watchprobe: read %s: %s\n", path, strerror((int)-len));
		close(fd);
		return 1;
	}
	free(text);
	text = NULL;

	int64_t start = now_ms();
	if (cmd < argc && (child = spawn(argv + cmd)) < 0) {
		close(fd);
		return 1;
	}
	struct pollfd pfd = {.fd = fd, .events = POLLPRI};
	int n;
	do {
		int left = timeout - (int)(now_ms() - start);
		n = poll(&pfd, 1, left > 0 ? left : 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		perror("watchprobe: poll");
		rc = 1;
	} else if (n == 0) {
		printf("timeout\n");
	} else {
		printf("woken revents=");
		print_revents(pfd.revents);
		printf(" ms=%lld\n", (long long)(now_ms() - start));
	}
	if (child > 0 && reap(child, argv[cmd]) != 0)
		rc = 1;
	len = read_text(fd, &text);
	if (len < 0) {
		fprintf(stderr, "watchprobe: re-read %s: %s\n", path, strerror((int)-len));
		close(fd);
		return 1;
	}
	/* Read again: no change since, so no wake-up. */
	do {
		n = poll(&pfd, 1, AGAIN_MS);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		printf("again: woken revents=");
		print_revents(pfd.revents);
		printf("\n");
	} else {
		printf("again: %s\n", n == 0 ? "timeout" : strerror(errno));
	}
	fwrite(text, 1, (size_t)len, stdout);
	free(text);
	close(fd);
	return rc;
}

/* ---- the events feed ---- */

static void print_read(const char *what, ssize_t n, int err)
{
	if (n < 0)
		printf("%s: %s\n", what, strerrorname_np(err) ? strerrorname_np(err) : "EUNKNOWN");
	else
		printf("%s: read %zd bytes\n", what, n);
}

static int cmd_feed_nonblock(int argc, char **argv)
{
	char buf[FEED_BUF];
	ssize_t n;

	if (argc != 3)
		return usage();
	int fd = open(argv[2], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "watchprobe: open %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	n = read(fd, buf, sizeof(buf));
	print_read("open", n, errno);
	close(fd);

	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		fprintf(stderr, "watchprobe: open %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	n = read(fd, buf, sizeof(buf));
	print_read("fcntl", n, errno);
	close(fd);
	return 0;
}

/* Prints what one read() of the feed gave; 1 when it is not whole lines. */
static int print_lines(const char *buf, ssize_t n)
{
	fwrite(buf, 1, (size_t)n, stdout);
	if (n > 0 && buf[n - 1] != '\n') {
		fprintf(stderr, "watchprobe: a read() of the feed ends inside a line\n");
		printf("\n");
		return 1;
	}
	return 0;
}

static int cmd_feed_poll(int argc, char **argv)
{
	char buf[FEED_BUF];
	int timeout, nargs, rc = 0;
	pid_t child = -1;

	if (argc < 4 || !parse_int(argv[2], 0, &timeout))
		return usage();
	int cmd = split_cmd(argc, argv, 3, &nargs);
	if (cmd < 0 || nargs != 1)
		return usage();
	int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "watchprobe: open %s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int n = poll(&pfd, 1, 0);
	if (n > 0) {
		printf("before: revents=");
		print_revents(pfd.revents);
		printf("\n");
	} else {
		printf("before: none\n");
	}
	int64_t start = now_ms();
	if (cmd < argc && (child = spawn(argv + cmd)) < 0) {
		close(fd);
		return 1;
	}
	do {
		int left = timeout - (int)(now_ms() - start);
		n = poll(&pfd, 1, left > 0 ? left : 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		perror("watchprobe: poll");
		rc = 1;
	} else if (n == 0) {
		printf("timeout\n");
	} else {
		printf("woken revents=");
		print_revents(pfd.revents);
		printf(" ms=%lld\n", (long long)(now_ms() - start));
		ssize_t len = read(fd, buf, sizeof(buf));
		if (len < 0) {
			perror("watchprobe: read the feed");
			rc = 1;
		} else {
			rc |= print_lines(buf, len);
		}
	}
	if (child > 0 && reap(child, argv[cmd]) != 0)
		rc = 1;
	close(fd);
	return rc;
}

static int cmd_feed_read(int argc, char **argv)
{
	char buf[FEED_BUF];
	int fd, silence, rc = 0;

	if (argc != 4 || !parse_int(argv[2], 0, &fd) || !parse_int(argv[3], 0, &silence))
		return usage();
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int n = poll(&pfd, 1, silence);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("watchprobe: poll the feed");
			return 1;
		}
		if (n == 0)
			break;
		if (pfd.revents & (POLLNVAL | POLLERR)) {
			fprintf(stderr, "watchprobe: poll the feed: revents 0x%x\n", pfd.revents);
			return 1;
		}
		ssize_t len = read(fd, buf, sizeof(buf));
		if (len < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (len < 0) {
			perror("watchprobe: read the feed");
			return 1;
		}
		if (len == 0) {
			fprintf(stderr, "watchprobe: the feed read returned 0 (EOF)\n");
			return 1;
		}
		rc |= print_lines(buf, len);
	}
	return rc;
}

static int cmd_write_loop(int argc, char **argv)
{
	int count;

	if (argc != 5 || !parse_int(argv[3], 1, &count))
		return usage();
	for (int i = 1; i <= count; i++) {
		char buf[512];
		int len = snprintf(buf, sizeof(buf), "%s%d\n", argv[4], i);
		int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0) {
			fprintf(stderr, "watchprobe: open %s (write %d): %s\n", argv[2], i,
			        strerror(errno));
			return 1;
		}
		if (len < 0 || (size_t)len >= sizeof(buf) || write(fd, buf, (size_t)len) != len) {
			fprintf(stderr, "watchprobe: write %s (write %d): %s\n", argv[2], i,
			        strerror(errno));
			close(fd);
			return 1;
		}
		if (close(fd) < 0) {
			fprintf(stderr, "watchprobe: close %s (write %d): %s\n", argv[2], i,
			        strerror(errno));
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	/* A reader of our output that went away must not kill us mid-check. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "inotify") == 0)
		return cmd_inotify(argc, argv);
	if (strcmp(argv[1], "poll") == 0)
		return cmd_poll(argc, argv);
	if (strcmp(argv[1], "feed-nonblock") == 0)
		return cmd_feed_nonblock(argc, argv);
	if (strcmp(argv[1], "feed-poll") == 0)
		return cmd_feed_poll(argc, argv);
	if (strcmp(argv[1], "feed-read") == 0)
		return cmd_feed_read(argc, argv);
	if (strcmp(argv[1], "write-loop") == 0)
		return cmd_write_loop(argc, argv);
	return usage();
}
