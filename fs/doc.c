/* SPDX-License-Identifier: MIT */
/* Documents: what one open file writes to config.ini, a config key or a
 * registry entry, over as many write() calls as it takes (a shell's printf
 * writes a line at a time; the kernel splits one large write into requests
 * of 128 KiB, cut at any byte), is one change, applied whole or not at all.
 *
 * A document starts with a write at offset 0 (or at any offset but where
 * the last one ended) and grows with each write that follows on. Each
 * write applies the document up to its last complete line, when that is
 * further than the last write applied (so `echo` gets its error from
 * write()); a last line without a newline waits for the next write or for
 * close() (flush), whose error is then close()'s. When a part is refused,
 * the kind's undo takes back what the earlier parts did (only where no
 * other writer changed it since), and the document is refused whole: every
 * later write to it gets the same error, and close() applies nothing.
 * Between the parts, watchers may see the document half applied. A
 * document is at most its kind's max bytes (EFBIG past it): the text is
 * held until the open file closes.
 *
 * Locks: struct mfs_doc's lock serialises one open file's document and is
 * held across applying it, that is across core calls (a reconfiguration
 * may wait for a hook): it is taken holding no other lock of fs/, and only
 * core's are taken under it. The handle's lock is held only to make the
 * document, once. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"

struct mfs_doc {
	pthread_mutex_t lock;
	struct mu_buf text; /* the document so far */
	size_t applied;     /* how much of it the kind has applied */
	int err;            /* refused: what every later part gets */
	void *state;        /* the kind's: what to undo */
	const struct mfs_doc_ops *ops;
};

void mfs_doc_free(struct mfs_doc *d)
{
	if (!d)
		return;
	if (d->state && d->ops && d->ops->free)
		d->ops->free(d->state);
	mu_buf_free(&d->text);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* The open file's document, made at its first write. */
static struct mfs_doc *doc_of(struct handle *h, const struct mfs_doc_ops *ops, bool make)
{
	pthread_mutex_lock(&h->lock);
	if (!h->doc && make) {
		h->doc = calloc(1, sizeof(*h->doc));
		if (h->doc) {
			pthread_mutex_init(&h->doc->lock, NULL);
			h->doc->ops = ops;
		}
	}
	struct mfs_doc *d = h->doc;
	pthread_mutex_unlock(&h->lock);
	return d;
}

/* A new document: what the last one did stays done. */
static void doc_reset(struct mfs_doc *d)
{
	if (d->state && d->ops->free)
		d->ops->free(d->state);
	d->state = NULL;
	d->text.len = 0;
	d->applied = 0;
	d->err = 0;
}

/* The document is refused: what its earlier parts did is undone, and every
 * later part gets r. */
static void doc_refuse(struct mfs_req *c, struct mfs_doc *d, int r)
{
	if (d->state && d->ops->undo)
		d->ops->undo(c, d->state);
	d->err = r;
}

/* Applies the document up to len; a refusal undoes the earlier parts. */
static int doc_apply(struct mfs_req *c, struct mfs_doc *d, size_t len)
{
	int r = 0;
	if (d->ops->check)
		r = d->ops->check(c, d->text.data, d->text.len);
	if (r == 0 && len > d->applied) {
		r = d->ops->apply(c, &d->state, d->text.data, len);
		if (r == 0)
			d->applied = len;
	}
	if (r < 0)
		doc_refuse(c, d, r);
	return r;
}

int mfs_doc_write(struct mfs_req *c, struct handle *h, const struct mfs_doc_ops *ops,
                  const char *buf, size_t size, off_t off)
{
	struct mfs_doc *d = doc_of(h, ops, true);
	if (!d)
		return -ENOMEM;
	pthread_mutex_lock(&d->lock);
	if (off == 0 || (size_t)off != d->text.len)
		doc_reset(d);
	size_t before = d->text.len;
	int r = d->err;
	if (r == 0 && size > ops->max - d->text.len) {
		/* What an open file holds is bounded (anyone may write a
		 * registry entry): too long, the document is refused. */
		mu_log(MU_LOG_WARNING, "%s: a document of more than %zu bytes is refused",
		       c->kind->what, ops->max);
		r = -EFBIG;
		doc_refuse(c, d, r);
	}
	if (r == 0)
		r = mu_buf_append(&d->text, buf, size);
	if (r == 0) {
		const char *nl = size ? memrchr(d->text.data, '\n', d->text.len) : NULL;
		r = doc_apply(c, d, nl ? (size_t)(nl - d->text.data) + 1 : 0);
		/* A failed write() wrote nothing: one that follows on from the
		 * last that succeeded is still this document, and refused. */
		if (r < 0)
			d->text.len = before;
	}
	if (r == 0 && d->applied == 0)
		r = 1; /* nothing applied yet: a created entry stays pending */
	pthread_mutex_unlock(&d->lock);
	return r;
}

bool mfs_doc_waiting(struct mfs *fs, const struct fuse_file_info *fi)
{
	struct handle *h = mfs_handle_get(fs, fi);
	struct mfs_doc *d = h ? doc_of(h, NULL, false) : NULL;
	bool waiting = false;
	if (d) {
		/* Being applied: this close must wait for it. */
		waiting = pthread_mutex_trylock(&d->lock) != 0;
		if (!waiting) {
			waiting = !d->err && d->text.len > d->applied;
			pthread_mutex_unlock(&d->lock);
		}
	}
	mfs_handle_put(fs, h);
	return waiting;
}

int mfs_doc_flush(struct mfs_req *c, struct fuse_file_info *fi, const struct mfs_doc_ops *ops)
{
	struct handle *h = mfs_handle_get(c->fs, fi);
	struct mfs_doc *d = h ? doc_of(h, ops, false) : NULL;
	int r = 0;
	bool applied = false;
	if (d) {
		pthread_mutex_lock(&d->lock);
		if (!d->err && d->text.len > d->applied)
			r = doc_apply(c, d, d->text.len);
		applied = !d->err && d->applied > 0;
		pthread_mutex_unlock(&d->lock);
	}
	if ((c->kind->flags & MK_PENDING) && mfs_node_pending(c->fs, c->node)) {
		if (r < 0)
			mfs_node_unhash_self(c->fs, c->node); /* refused: no entry */
		else if (applied)
			mfs_node_made_real(c->fs, c->node, c->kind->id ? c->kind->id(c) : 0);
	}
	if (r == 0 && applied) {
		pthread_mutex_lock(&h->lock);
		h->have = false; /* the next read renders the new state */
		pthread_mutex_unlock(&h->lock);
	}
	mfs_handle_put(c->fs, h);
	return r;
}
