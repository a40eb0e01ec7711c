/* SPDX-License-Identifier: MIT */
/* The events feed: `read()` blocks until there are events, without holding
 * a worker thread. A read with nothing to return is parked; the feed's
 * thread, woken by every event, answers parked reads and wakes poll()
 * waiters. An interrupted read (a signal in the reader) is answered EINTR.
 *
 * The file is not seekable (FOPEN_NONSEEKABLE: lseek gets ESPIPE), so a
 * shell's `read` takes it a byte at a time instead of reading a block and
 * seeking back to the end of the line it used. Each read returns whole
 * lines when its buffer holds at least the first; a smaller one gets that
 * line in pieces: the open file keeps the rest of what it rendered (one
 * render, KEPT_CHUNK bytes or one longer line) and serves the next reads
 * from it. A write of "SEQ\n" resumes after event SEQ (mev_ring_resume).
 * Each open file's cursor and kept text are only touched under the feed's
 * lock. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "fs_i.h"
#include "runtime.h"

/* A reader's kept text is one render of this size, or one line if longer
 * (a path and a detail: far below KEPT_MAX). */
#define KEPT_CHUNK 4096
#define KEPT_MAX (1u << 20)

struct waiter {
	struct waiter *next;
	fuse_req_t req;
	struct handle *h;
	size_t size;
	bool armed;       /* its interrupt callback is registered */
	bool interrupted; /* the callback ran before it was armed */
};

struct poller {
	struct poller *next;
	struct handle *h;
	struct fuse_pollhandle *ph;
};

struct mfeed {
	struct mfs *fs;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool kicked, stop, running;
	struct waiter *waiters;
	struct poller *pollers;
	/* Parked reads plus poll handles: an event with nobody to tell costs
	 * no wake-up (the feed's file is read far less often than things change). */
	atomic_uint interested;
};

static void kept_drop(struct handle *h)
{
	free(h->kept);
	h->kept = NULL;
	h->kept_len = h->kept_off = 0;
}

/* Moves to buf what fits of h's kept text: whole lines, or len bytes of the
 * first when it does not fit whole. Feed lock held; h->kept is set. */
static size_t take_kept(struct handle *h, char *buf, size_t len)
{
	const char *p = h->kept + h->kept_off;
	size_t n = h->kept_len - h->kept_off;
	if (n > len) {
		const char *nl = memrchr(p, '\n', len);
		n = nl ? (size_t)(nl - p) + 1 : len;
	}
	memcpy(buf, p, n);
	h->kept_off += n;
	if (h->kept_off == h->kept_len)
		kept_drop(h);
	return n;
}

/* Renders what is at h's cursor into its kept text, for a read smaller than
 * the first line: the bytes kept, 0 when nothing is new, or -errno. */
static ssize_t render_kept(struct mfeed *fd, struct handle *h)
{
	for (size_t cap = KEPT_CHUNK; cap <= KEPT_MAX; cap *= 2) {
		char *text = malloc(cap);
		if (!text)
			return -ENOMEM;
		ssize_t n = mev_ring_read(mrt_events(fd->fs->rt), &h->cursor, text, cap);
		if (n > 0) {
			h->kept = text;
			h->kept_len = (size_t)n;
			h->kept_off = 0;
			return n;
		}
		free(text);
		if (n != -ENOSPC)
			return n;
	}
	return -EIO; /* no event is that long */
}

/* Answers with what h has to read: true when answered. Feed lock held. */
static bool try_answer(struct mfeed *fd, fuse_req_t req, struct handle *h, size_t size)
{
	if (size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return true;
	}
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return true;
	}
	size_t pos = h->kept ? take_kept(h, buf, size) : 0;
	ssize_t n = 0;
	if (!h->kept && pos < size) {
		n = mev_ring_read(mrt_events(fd->fs->rt), &h->cursor, buf + pos, size - pos);
		if (n == -ENOSPC && pos == 0 && (n = render_kept(fd, h)) > 0) {
			pos = take_kept(h, buf, size);
			n = 0;
		}
		if (n > 0)
			pos += (size_t)n;
		else if (n == -ENOSPC)
			n = 0; /* the next line waits for the next read */
	}
	if (pos > 0)
		fuse_reply_buf(req, buf, pos);
	else if (n < 0)
		fuse_reply_err(req, (int)-n);
	free(buf);
	return pos > 0 || n < 0;
}

/* Something to read at h. Feed lock held. */
static bool readable(struct handle *h, uint64_t next)
{
	return h->kept || h->cursor < next;
}

static void on_interrupt(fuse_req_t req, void *arg)
{
	struct mfeed *fd = arg;
	pthread_mutex_lock(&fd->lock);
	for (struct waiter **pp = &fd->waiters; *pp; pp = &(*pp)->next) {
		struct waiter *w = *pp;
		if (w->req != req)
			continue;
		if (w->armed) {
			*pp = w->next;
			atomic_fetch_sub(&fd->interested, 1);
			fuse_reply_err(req, EINTR);
			pthread_mutex_unlock(&fd->lock);
			mfs_handle_put(fd->fs, w->h);
			free(w);
			return;
		} else {
			w->interrupted = true;
		}
		break;
	}
	pthread_mutex_unlock(&fd->lock);
}

void mfs_feed_read(struct mfs *fs, fuse_req_t req, struct handle *h, bool nonblock, size_t size)
{
	struct mfeed *fd = fs->feed;
	pthread_mutex_lock(&fd->lock);
	if (try_answer(fd, req, h, size)) {
		pthread_mutex_unlock(&fd->lock);
		mfs_handle_put(fs, h);
		return;
	}
	struct waiter *w = nonblock || fd->stop ? NULL : calloc(1, sizeof(*w));
	if (!w) {
		pthread_mutex_unlock(&fd->lock);
		fuse_reply_err(req, nonblock ? EAGAIN : fd->stop ? EINTR : ENOMEM);
		mfs_handle_put(fs, h);
		return;
	}
	*w = (struct waiter){.req = req, .h = h, .size = size};
	w->next = fd->waiters;
	fd->waiters = w;
	atomic_fetch_add(&fd->interested, 1);
	pthread_mutex_unlock(&fd->lock);

	/* May call on_interrupt at once: hence outside the lock, and armed
	 * only afterwards, so that nothing answers the request before libfuse
	 * is done with this call. */
	fuse_req_interrupt_func(req, on_interrupt, fd);

	pthread_mutex_lock(&fd->lock);
	for (struct waiter **pp = &fd->waiters; *pp; pp = &(*pp)->next) {
		if (*pp != w)
			continue;
		if (w->interrupted) {
			*pp = w->next;
			atomic_fetch_sub(&fd->interested, 1);
			fuse_reply_err(req, EINTR);
			pthread_mutex_unlock(&fd->lock);
			mfs_handle_put(fs, h);
			free(w);
			return;
		} else {
			w->armed = true;
			fd->kicked = true; /* an event may have come meanwhile */
			pthread_cond_signal(&fd->cond);
		}
		break;
	}
	pthread_mutex_unlock(&fd->lock);
}

unsigned mfs_feed_poll(struct mfs *fs, struct handle *h, struct fuse_pollhandle *ph)
{
	struct mfeed *fd = fs->feed;
	/* Writing (a resume) never waits. */
	unsigned revents = POLLOUT | POLLWRNORM;
	pthread_mutex_lock(&fd->lock);
	if (ph) {
		struct poller *p = fd->pollers;
		while (p && p->h != h)
			p = p->next;
		if (!p && (p = calloc(1, sizeof(*p)))) {
			p->h = h;
			p->next = fd->pollers;
			fd->pollers = p;
		}
		if (p) {
			if (p->ph)
				fuse_pollhandle_destroy(p->ph);
			else
				atomic_fetch_add(&fd->interested, 1);
			p->ph = ph;
		} else {
			fuse_pollhandle_destroy(ph);
		}
	}
	/* Looked at after the interest is visible: an event after this look
	 * wakes the thread, which notifies the handle. */
	if (readable(h, mev_ring_next_seq(mrt_events(fs->rt))))
		revents |= POLLIN | POLLRDNORM;
	pthread_mutex_unlock(&fd->lock);
	return revents;
}

void mfs_feed_forget(struct mfs *fs, struct handle *h)
{
	struct mfeed *fd = fs->feed;
	if (!fd)
		return;
	pthread_mutex_lock(&fd->lock);
	for (struct poller **pp = &fd->pollers; *pp;) {
		struct poller *p = *pp;
		if (p->h == h) {
			*pp = p->next;
			if (p->ph) {
				fuse_pollhandle_destroy(p->ph);
				atomic_fetch_sub(&fd->interested, 1);
			}
			free(p);
		} else {
			pp = &p->next;
		}
	}
	/* A parked read cannot outlive its file: the kernel releases a file
	 * only once its reads are answered. */
	pthread_mutex_unlock(&fd->lock);
}

ssize_t mfs_feed_resume(struct mfs *fs, struct handle *h, const char *buf, size_t size)
{
	struct mfeed *fd = fs->feed;
	char text[24], line[32];
	size_t len = size && buf[size - 1] == '\n' ? size - 1 : size;
	uint64_t seq;
	if (len >= sizeof(text)) {
		mu_log(MU_LOG_INFO,
		       "events: a write of %zu bytes is no resume: write SEQ, a newline", size);
		return -EINVAL;
	}
	memcpy(text, buf, len);
	text[len] = '\0';
	if (mu_parse_u64(text, &seq) < 0 || seq == UINT64_MAX) {
		mu_log(MU_LOG_INFO,
		       "events: a resume must be SEQ (decimal digits), then a newline");
		return -EINVAL;
	}
	char *kept = malloc(sizeof(line));
	if (!kept)
		return -ENOMEM;
	pthread_mutex_lock(&fd->lock);
	ssize_t n = mev_ring_resume(mrt_events(fs->rt), seq, &h->cursor, line, sizeof(line));
	kept_drop(h);
	if (n > 0) {
		memcpy(kept, line, (size_t)n);
		h->kept = kept;
		h->kept_len = (size_t)n;
		kept = NULL;
	}
	if (fd->waiters || fd->pollers) {
		fd->kicked = true; /* a parked read of this file may have something now */
		pthread_cond_signal(&fd->cond);
	}
	pthread_mutex_unlock(&fd->lock);
	free(kept);
	return n < 0 ? n : (ssize_t)size;
}

static void kick(const struct mev *ev, void *arg)
{
	struct mfeed *fd = arg;
	if (atomic_load_explicit(&fd->interested, memory_order_acquire) == 0)
		return;
	pthread_mutex_lock(&fd->lock);
	fd->kicked = true;
	pthread_cond_signal(&fd->cond);
	pthread_mutex_unlock(&fd->lock);
}

static void *run(void *arg)
{
	struct mfeed *fd = arg;
	pthread_mutex_lock(&fd->lock);
	while (!fd->stop) {
		while (!fd->kicked && !fd->stop)
			pthread_cond_wait(&fd->cond, &fd->lock);
		fd->kicked = false;
		struct waiter *answered = NULL;
		for (struct waiter **pp = &fd->waiters; *pp;) {
			struct waiter *w = *pp;
			if (w->armed && try_answer(fd, w->req, w->h, w->size)) {
				*pp = w->next;
				atomic_fetch_sub(&fd->interested, 1);
				w->next = answered;
				answered = w;
			} else {
				pp = &w->next;
			}
		}
		if (answered) {
			/* Dropping a handle may free it, which takes this lock. */
			pthread_mutex_unlock(&fd->lock);
			while (answered) {
				struct waiter *w = answered;
				answered = w->next;
				mfs_handle_put(fd->fs, w->h);
				free(w);
			}
			pthread_mutex_lock(&fd->lock);
		}
		uint64_t next = mev_ring_next_seq(mrt_events(fd->fs->rt));
		for (struct poller *p = fd->pollers; p; p = p->next) {
			if (p->ph && readable(p->h, next)) {
				fuse_lowlevel_notify_poll(p->ph);
				fuse_pollhandle_destroy(p->ph);
				p->ph = NULL; /* the kernel polls again, with a new one */
				atomic_fetch_sub(&fd->interested, 1);
			}
		}
	}
	/* Unmounting: nobody will read on. */
	struct waiter *left = fd->waiters;
	fd->waiters = NULL;
	atomic_store(&fd->interested, 0);
	pthread_mutex_unlock(&fd->lock);
	while (left) {
		struct waiter *w = left;
		left = w->next;
		fuse_reply_err(w->req, EINTR);
		mfs_handle_put(fd->fs, w->h);
		free(w);
	}
	return NULL;
}

int mfs_feed_start(struct mfs *fs)
{
	struct mfeed *fd = calloc(1, sizeof(*fd));
	if (!fd)
		return -ENOMEM;
	fd->fs = fs;
	pthread_mutex_init(&fd->lock, NULL);
	pthread_cond_init(&fd->cond, NULL);
	fs->feed = fd;
	int r = mfs_thread_start(&fd->thread, "mallafs-feed", run, fd);
	fd->running = r == 0;
	if (r == 0)
		r = mev_ring_add_listener(mrt_events(fs->rt), kick, fd);
	if (r < 0) {
		mfs_feed_stop(fs);
		return r;
	}
	return 0;
}

void mfs_feed_stop(struct mfs *fs)
{
	struct mfeed *fd = fs->feed;
	if (!fd)
		return;
	mev_ring_remove_listener(mrt_events(fs->rt), kick, fd);
	pthread_mutex_lock(&fd->lock);
	fd->stop = true;
	pthread_cond_signal(&fd->cond);
	pthread_mutex_unlock(&fd->lock);
	if (fd->running)
		pthread_join(fd->thread, NULL);
	fs->feed = NULL;
	while (fd->pollers) {
		struct poller *p = fd->pollers;
		fd->pollers = p->next;
		if (p->ph)
			fuse_pollhandle_destroy(p->ph);
		free(p);
	}
	pthread_cond_destroy(&fd->cond);
	pthread_mutex_destroy(&fd->lock);
	free(fd);
}
