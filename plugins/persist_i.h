/* The persist plugin's parts, shared by its files and its unit test only:
 * persist.c (the plugin: lifecycle, the writer thread), persist_format.c
 * (the file format, in memory), persist_file.c (reading and writing the
 * file without following a symlink), persist_owner.c (the identity the
 * writer thread acts with). */
#ifndef MALLAFS_PLUGINS_PERSIST_I_H
#define MALLAFS_PLUGINS_PERSIST_I_H

#include "mallafs-plugin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* The largest file persist reads or writes, in bytes (4 GiB): a bigger one is
 * refused with EFBIG before anything is allocated for it, and a store whose
 * file would be bigger is not saved (EFBIG, logged), so that persist never
 * writes a file it would refuse to load. */
#define PERSIST_FILE_MAX (4ULL << 30)
/* Bytes the temporary file's name adds to the file's: ".tmp." and 16 hex
 * digits. The name with them must fit in NAME_MAX. */
#define PERSIST_TMP_SUFFIX 21

/* ---- persist_format.c ---- */

/* A growable buffer; err is set (-ENOMEM) once an append fails, and every
 * later append does nothing. */
struct pbuf {
	char *data;
	size_t len, cap;
	int err;
};

void pbuf_add(struct pbuf *b, const void *data, size_t len);

/* The whole store of svc in the file format, in memory (malloc'd). */
int persist_snapshot(struct mallafs_svc *svc, struct pbuf *ret);

struct persist_record {
	const char *key; /* not NUL-terminated */
	size_t klen;
	const char *value;
	size_t vlen;
};

/* Checks a whole file and lists its records (pointing into d). -EINVAL with
 * a reason when any of it does not check out. */
int persist_parse(const char *d, size_t size, struct persist_record **ret, size_t *ret_n,
                  struct mallafs_reason *why);

/* ---- persist_file.c: every call acts with the calling thread's
 * filesystem identity (see persist_owner.c) ---- */

/* Opens the folder path names (path is absolute, checked by the merge)
 * following no symbolic link anywhere on the way: openat2 with
 * RESOLVE_NO_SYMLINKS, or, where the kernel lacks openat2 (before 5.6) or
 * walk is true, one component at a time with O_NOFOLLOW. A symbolic link on
 * the way is -ELOOP. Returns an fd open for reading, or -errno with a
 * reason; *ret_name points to the file's name in path. */
int persist_open_dir(const char *path, bool walk, int *ret_fd, const char **ret_name,
                     struct mallafs_reason *why);

/* Opens the file at path for reading (O_NOFOLLOW, O_NONBLOCK so that a FIFO
 * does not block) and checks it: a regular file of at most PERSIST_FILE_MAX
 * bytes, belonging to the thread's filesystem uid or to root. -ENOENT (no
 * reason) when it or its folder does not exist; -ELOOP a symbolic link;
 * -EISDIR, -EINVAL another kind of file; -EFBIG too big; -EPERM another
 * user's. *st is its fstat. */
int persist_open_file(const char *path, int *ret_fd, struct stat *st, struct mallafs_reason *why);

/* Reads the whole open file (st from persist_open_file), never more than
 * PERSIST_FILE_MAX bytes (-EFBIG when it grew past them). */
int persist_read_fd(int fd, const struct stat *st, char **ret, size_t *ret_len,
                    struct mallafs_reason *why);

/* Replaces the file at path with data atomically: a new temporary file of a
 * random name beside it (O_CREAT|O_EXCL|O_NOFOLLOW), written, fsync'd,
 * renamed over path, then the folder fsync'd. The file gets the permission
 * bits of the regular file it replaces when that belongs to the thread's
 * filesystem uid or to root, else 0600. *ret_st is the new
 * file's fstat. */
int persist_write_file(const char *path, const void *data, size_t len, struct stat *ret_st,
                       struct mallafs_reason *why);

/* ---- persist_owner.c ---- */

/* The identity a thread took last (the owner it acts as). Only the thread
 * that acts touches it. */
struct persist_as {
	bool known; /* uid, gid and groups hold the last owner seen */
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* sorted */
	size_t ngroups;
	gid_t *own_groups; /* the daemon's, as the thread started */
	size_t nown;
};

/* Called first by the thread that will act: records its groups. */
int persist_as_init(struct persist_as *as);
void persist_as_free(struct persist_as *as);

/* Makes the calling thread's filesystem uid and gid, and its supplementary
 * groups, those of svc's owner now (mallafs_svc_owner; groups from the
 * user database, or the owner's gid alone when the uid has no entry): with
 * setfsuid, setfsgid and the raw setgroups system call, which act on this
 * thread only. Each switch is checked; when one did not take, -EPERM with
 * the reason, and nothing may be done with the files. */
int persist_as_owner(struct persist_as *as, struct mallafs_svc *svc, struct mallafs_reason *why);

/* Gives the calling thread the daemon's identity back after
 * persist_as_owner: its groups as persist_as_init found them, its
 * filesystem uid and gid those of the process. A worker of the timer loop,
 * shared with every service, does this after each save. 0, or -EPERM with
 * the reason when a switch did not take. */
int persist_as_daemon(struct persist_as *as, struct mallafs_reason *why);

/* The calling thread's filesystem uid: whom persist acts as. */
uid_t persist_fsuid(void);

#endif
