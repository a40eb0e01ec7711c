/* A folder listing under way: the buffer of one readdir reply.
 *
 * Readdir offsets: 1 and 2 are "." and "..". Listings of small, derived
 * folders count entries from 3; listings backed by core ids (services,
 * keys, registry entries, apps) use ID_BASE + id, so an offset stays valid
 * while entries come and go. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kind.h"

#define ID_BASE 16

int mfs_dirbuf_init(struct mfs_dirbuf *db, fuse_req_t req, struct mfs *fs, struct mnode *dir,
                    size_t size, off_t off)
{
	*db = (struct mfs_dirbuf){
	        .req = req, .size = size, .fs = fs, .dir = dir, .next = 2, .skip = off};
	db->buf = malloc(size ? size : 1);
	return db->buf ? 0 : -ENOMEM;
}

int mfs_dir_add(struct mfs_dirbuf *db, const char *name, bool dir, off_t off)
{
	struct stat st = {0};
	st.st_mode = dir ? S_IFDIR : S_IFREG;
	/* d_ino: the node's if the kernel knows it, else a stable stand-in. */
	struct mnode *n = mfs_node_find(db->fs, db->dir, name);
	st.st_ino = n ? n->ino : ((mu_hash(name, strlen(name)) | (1ULL << 62)) & ~(1ULL << 63));
	mfs_node_put(db->fs, n);
	size_t need = fuse_add_direntry(db->req, NULL, 0, name, NULL, 0);
	if (db->len + need > db->size)
		return 1;
	fuse_add_direntry(db->req, db->buf + db->len, db->size - db->len, name, &st, off);
	db->len += need;
	return 0;
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

off_t mfs_dir_id_off(uint64_t id)
{
	return (off_t)(ID_BASE + id);
}
