/* SPDX-License-Identifier: MIT */
/* A folder listing under way: the buffer of one readdir reply.
 *
 * Readdir offsets: 1 and 2 are "." and "..". Listings of small, derived
 * folders count entries from 3; listings backed by core (services, keys,
 * registry entries, apps) use ID_BASE + the entry's listing cookie, so an
 * offset stays valid while entries come and go.
 *
 * readdirplus (ls -l; a folder's first reply, in the kernel's adaptive
 * mode): the kernel asks for each entry's attributes with the listing, so
 * it makes no lookup per entry. Core lists
 * holding its locks, so the entries are only noted then (with the room
 * each will take); once it is done, each is looked up as a lookup request
 * would be, and added with its inode and attributes. An entry that went in
 * between is added without an inode (the kernel then just lists it). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kind.h"
#include "service.h"

#define ID_BASE 16

int mfs_dirbuf_init(struct mfs_dirbuf *db, struct mfs_req *c, size_t size, off_t off, bool plus)
{
	*db = (struct mfs_dirbuf){.c = c,
	                          .req = c->req,
	                          .size = size,
	                          .fs = c->fs,
	                          .dir = c->node,
	                          .next = 2,
	                          .skip = off,
	                          .plus = plus};
	db->buf = malloc(size ? size : 1);
	return db->buf ? 0 : -ENOMEM;
}

void mfs_dirbuf_free(struct mfs_dirbuf *db)
{
	for (size_t i = 0; i < db->nents; i++)
		free(db->ents[i].name);
	free(db->ents);
	free(db->inos);
	free(db->buf);
	db->ents = NULL;
	db->inos = NULL;
	db->buf = NULL;
	db->nents = db->ninos = 0;
}

/* d_ino: the node's if the kernel knows it, else a stable stand-in. */
static uint64_t dir_ino(struct mfs_dirbuf *db, const char *name)
{
	if (strcmp(name, ".") == 0)
		return db->dir->ino;
	struct mnode *n = strcmp(name, "..") == 0 ? NULL : mfs_node_find(db->fs, db->dir, name);
	uint64_t ino = n ? n->ino : mfs_standin_ino(name);
	mfs_node_put(db->fs, n);
	return ino;
}

/* readdirplus: the entry is noted, if the reply has room for it. */
static int note(struct mfs_dirbuf *db, const char *name, bool dir, off_t off)
{
	size_t need = fuse_add_direntry_plus(db->req, NULL, 0, name, NULL, 0);
	if (db->need + need > db->size)
		return 1;
	if (db->nents == db->cap) {
		size_t cap = db->cap ? db->cap * 2 : 32;
		struct mfs_dirent *e = realloc(db->ents, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		db->ents = e;
		db->cap = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	db->ents[db->nents++] = (struct mfs_dirent){.name = copy, .dir = dir, .off = off};
	db->need += need;
	return 0;
}

/* d_ino for a name the kernel may not know: a stable stand-in (bit 61 set,
 * bit 62 clear: no counter's, no key's; see node.c). */
uint64_t mfs_standin_ino(const char *name)
{
	return (mu_hash(name, strlen(name)) & ((1ULL << 61) - 1)) | (1ULL << 61);
}

int mfs_dir_add_ino(struct mfs_dirbuf *db, const char *name, bool dir, off_t off, uint64_t ino)
{
	if (db->plus)
		return note(db, name, dir, off);
	struct stat st = {0};
	st.st_mode = dir ? S_IFDIR : S_IFREG;
	st.st_ino = ino ? ino : dir_ino(db, name);
	size_t need = fuse_add_direntry(db->req, NULL, 0, name, NULL, 0);
	if (db->len + need > db->size)
		return 1;
	fuse_add_direntry(db->req, db->buf + db->len, db->size - db->len, name, &st, off);
	db->len += need;
	return 0;
}

int mfs_dir_add(struct mfs_dirbuf *db, const char *name, bool dir, off_t off)
{
	return mfs_dir_add_ino(db, name, dir, off, 0);
}

int mfs_dir_add_next(struct mfs_dirbuf *db, const char *name, bool dir)
{
	off_t off = ++db->next;
	if (off <= db->skip)
		return 0;
	return mfs_dir_add(db, name, dir, off);
}

uint64_t mfs_dir_after(const struct mfs_dirbuf *db)
{
	return db->skip > ID_BASE ? (uint64_t)(db->skip - ID_BASE) : 0;
}

off_t mfs_dir_id_off(uint64_t cookie)
{
	return (off_t)(ID_BASE + cookie);
}

/* One noted entry, looked up: its inode and attributes when it is there
 * (*ret_ino: the lookup the kernel now holds), else only its name. */
static void plus_entry(struct mfs_dirbuf *db, const struct mfs_dirent *d,
                       struct fuse_entry_param *e, uint64_t *ret_ino)
{
	*ret_ino = 0;
	if (strcmp(d->name, ".") != 0 && strcmp(d->name, "..") != 0) {
		struct mfs_child ch;
		int r = mfs_lookup(db->c, d->name, &ch);
		if (r == 0)
			r = mfs_entry_make(db->c, d->name, &ch, false, e, ret_ino);
		msvc_unref(ch.svc);
		if (r == 0)
			return;
	}
	/* "." and "..", or gone since it was listed: a name without inode
	 * (a zero ino is no lookup; the kernel lists it and links nothing). */
	memset(e, 0, sizeof(*e));
	e->attr.st_mode = d->dir ? S_IFDIR : S_IFREG;
	e->attr.st_ino = dir_ino(db, d->name);
}

int mfs_dirbuf_finish(struct mfs_dirbuf *db)
{
	if (!db->plus || db->nents == 0)
		return 0;
	db->inos = calloc(db->nents, sizeof(*db->inos));
	if (!db->inos)
		return -ENOMEM;
	for (size_t i = 0; i < db->nents; i++) {
		struct fuse_entry_param e;
		uint64_t ino;
		plus_entry(db, &db->ents[i], &e, &ino);
		/* The same name takes the same room: it fits, as noted. */
		db->len += fuse_add_direntry_plus(db->req, db->buf + db->len, db->size - db->len,
		                                  db->ents[i].name, &e, db->ents[i].off);
		if (ino)
			db->inos[db->ninos++] = ino;
	}
	return 0;
}

void mfs_dirbuf_unsent(struct mfs_dirbuf *db)
{
	for (size_t i = 0; i < db->ninos; i++)
		mfs_node_forget(db->fs, db->inos[i], 1);
}
