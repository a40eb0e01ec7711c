/* persist: keeps the store in a file across daemon restarts.
 *
 * Setting `path`: "" (the default) persists nothing; otherwise an absolute
 * file name. Changing it restarts the service: the old file gets a last
 * write as the plugin stops, the new one is loaded as it starts.
 *
 * At start, when the file exists it is read whole, checked whole (format,
 * lengths, key names, count, checksum), and only then loaded into the store
 * with mallafs_store_load, replacing the values of the keys it names (keys
 * it does not name stay). A file that cannot be read or does not check out
 * fails the start with a reason naming the file and the problem ("cannot
 * load /x/y.store: checksum mismatch ..."): the core then marks the service
 * failed with that reason in last_error. Nothing of a bad file is loaded and
 * the file is left as it is, for the user to inspect. When the file does not
 * exist it is created from the current store (failing the start when it
 * cannot be, rather than running with a persistence that does not persist).
 *
 * One exception to loading: when the file is the one this plugin instance
 * itself last wrote (same device, inode, size, mtime and ctime), the store is
 * already newer than it, since the store outlives the plugin's stop; loading
 * would bring back keys deleted and values overwritten while the service was
 * inactive, when the plugin's hooks did not see them. The store is then
 * written out instead.
 *
 * After every successful change (WRITE, CREATE, TRUNCATE, DELETE, RENAME),
 * store_after marks the store dirty and wakes a writer thread, which waits
 * 50 ms from the first change (and 50 ms since its previous write began) so a
 * burst costs one write, snapshots the whole store under the store's read
 * lock into memory, and writes it atomically: PATH.tmp.PID in the same
 * directory, fsync, rename over PATH, fsync of the directory. Readers of PATH
 * see the old file or the new one, never a mix. A failed write (disk full,
 * directory gone) is logged and tried again at the next change and at stop;
 * it never stops the service. At stop the thread is joined and any unsaved
 * change written synchronously.
 *
 * The file is created with mode 0600 (it holds the store's data, which may
 * be secrets); a file that exists keeps its permission bits.
 *
 * File format, version 1 (binary-safe, self-checking):
 *
 *     mallafs-store 1\n
 *     KEYLEN VALUELEN\nKEYVALUE\n          once per key
 *     end COUNT CHECKSUM\n
 *
 * KEYLEN, VALUELEN and COUNT are decimal without sign or leading zeros;
 * KEYLEN is 1..255 and the key a valid store key (no '/', no NUL, not "." or
 * ".."); the key and value bytes are raw (any bytes, NUL included) and
 * followed by one '\n' so the file stays readable with `less`. CHECKSUM is
 * the 64-bit FNV-1a hash of every byte before the "end" line, as 16
 * lowercase hex digits. Nothing follows the end line. A reader refuses
 * another version number rather than guess. Files over 4 GiB are refused. */
#include "builtin.h"
#include "plugin_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_SEC 1000000000LL
#define PERSIST_COALESCE_NS (50 * 1000000LL)
#define PERSIST_FILE_MAX (4ULL << 30)
#define PERSIST_KEY_MAX 255
#define PERSIST_MAGIC "mallafs-store "
#define PERSIST_VERSION 1
/* Room the temporary name needs after the path: ".tmp." and a PID. */
#define PERSIST_TMP_EXTRA 32

struct persist {
	struct mallafs_svc *svc;
	const struct mallafs_plugin *self;
	char *path; /* while started with a path; NULL persists nothing */

	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	/* lock: */
	bool dirty;   /* changes since the last snapshot began */
	bool unsaved; /* the last write failed */
	bool stopping;
	int64_t first_change;
	int64_t last_write;
	char last_error[MALLAFS_REASON_MAX]; /* the failure last logged */

	bool thread_started; /* start and stop only */
	pthread_t thread;

	/* The file this instance last wrote, to recognise it at the next
	 * start (writer thread and stop, which never run together). */
	bool saved;
	char *saved_path;
	dev_t saved_dev;
	ino_t saved_ino;
	off_t saved_size;
	struct timespec saved_mtime, saved_ctime;
};

static const struct mallafs_setting persist_settings[] = {
        {.key = "path", .def = "", .restart = 1},
        {.key = NULL},
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

/* ---- a growable buffer ---- */

struct buf {
	char *data;
	size_t len, cap;
	int err;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->err)
		return;
	if (len > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 4096;
		while (len > cap - b->len) {
			if (cap > SIZE_MAX / 2) {
				b->err = -ENOMEM;
				return;
			}
			cap *= 2;
		}
		char *p = realloc(b->data, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

/* ---- the file format ---- */

struct snap_ctx {
	struct buf b;
	uint64_t count;
};

static int snap_one(const char *key, const void *value, size_t len, const struct timespec *mtime,
                    void *arg)
{
	struct snap_ctx *c = arg;
	char head[64];
	size_t klen = strlen(key);
	int n = snprintf(head, sizeof(head), "%zu %zu\n", klen, len);
	buf_add(&c->b, head, (size_t)n);
	buf_add(&c->b, key, klen);
	buf_add(&c->b, value, len);
	buf_add(&c->b, "\n", 1);
	c->count++;
	return c->b.err;
}

/* The whole store in the file format, in memory: the store's lock is held
 * only while copying, never across disk I/O. */
static int snapshot(struct persist *p, struct buf *ret)
{
	struct snap_ctx c = {{0}};
	char line[64];
	int n = snprintf(line, sizeof(line), "%s%d\n", PERSIST_MAGIC, PERSIST_VERSION);
	buf_add(&c.b, line, (size_t)n);
	int r = mallafs_store_foreach(p->svc, snap_one, &c);
	if (r == 0 && c.b.err == 0) {
		uint64_t sum = fnv1a(FNV_INIT, c.b.data, c.b.len);
		n = snprintf(line, sizeof(line), "end %" PRIu64 " %016" PRIx64 "\n", c.count, sum);
		buf_add(&c.b, line, (size_t)n);
	}
	if (r == 0)
		r = c.b.err;
	if (r < 0) {
		free(c.b.data);
		return r;
	}
	*ret = c.b;
	return 0;
}

struct record {
	const char *key; /* not NUL-terminated */
	size_t klen;
	const char *value;
	size_t vlen;
};

/* A decimal number without sign or leading zeros, ended by `end`. Returns
 * the position after the terminator, or 0 when malformed. */
static size_t parse_num(const char *d, size_t pos, size_t size, char end, uint64_t max,
                        uint64_t *ret)
{
	uint64_t v = 0;
	size_t start = pos;
	while (pos < size && d[pos] >= '0' && d[pos] <= '9') {
		if (pos > start && d[start] == '0')
			return 0;
		uint64_t digit = (uint64_t)(d[pos] - '0');
		if (v > (max - digit) / 10)
			return 0;
		v = v * 10 + digit;
		pos++;
	}
	if (pos == start || pos >= size || d[pos] != end)
		return 0;
	*ret = v;
	return pos + 1;
}

static bool key_ok(const char *k, size_t len)
{
	if (len == 0 || len > PERSIST_KEY_MAX)
		return false;
	if ((len == 1 && k[0] == '.') || (len == 2 && k[0] == '.' && k[1] == '.'))
		return false;
	return !memchr(k, '\0', len) && !memchr(k, '/', len);
}

/* Checks a whole file and lists its records (pointing into d). Nothing is
 * loaded unless all of it checks out. */
static int parse_file(const char *d, size_t size, struct record **ret, size_t *ret_n,
                      struct mallafs_reason *why)
{
	struct record *v = NULL;
	size_t n = 0, cap = 0, pos;
	uint64_t version, count, klen, vlen;
	const size_t mlen = strlen(PERSIST_MAGIC);

	if (size < mlen || memcmp(d, PERSIST_MAGIC, mlen) != 0) {
		mallafs_reason_set(why, "not a mallafs store file (bad magic at byte 0)");
		goto bad;
	}
	pos = parse_num(d, mlen, size, '\n', UINT32_MAX, &version);
	if (!pos) {
		mallafs_reason_set(why, "bad header at byte %zu", mlen);
		goto bad;
	}
	if (version != PERSIST_VERSION) {
		mallafs_reason_set(why, "unsupported format version %" PRIu64 " (this is %d)",
		                   version, PERSIST_VERSION);
		goto bad;
	}
	for (;;) {
		if (pos >= size) {
			mallafs_reason_set(why, "truncated at byte %zu: no end line", pos);
			goto bad;
		}
		if (d[pos] == 'e')
			break;
		size_t at = pos;
		pos = parse_num(d, at, size, ' ', PERSIST_KEY_MAX, &klen);
		if (pos)
			pos = parse_num(d, pos, size, '\n', PERSIST_FILE_MAX, &vlen);
		if (!pos) {
			mallafs_reason_set(why, "bad record header at byte %zu (record %zu)", at,
			                   n + 1);
			goto bad;
		}
		if (klen == 0) {
			mallafs_reason_set(why, "bad key length 0 at byte %zu (record %zu)", at,
			                   n + 1);
			goto bad;
		}
		if (klen + vlen + 1 > size - pos) {
			mallafs_reason_set(why,
			                   "truncated at byte %zu: record %zu needs %" PRIu64
			                   " bytes, %zu left",
			                   pos, n + 1, klen + vlen + 1, size - pos);
			goto bad;
		}
		if (!key_ok(d + pos, klen)) {
			mallafs_reason_set(why, "invalid key name at byte %zu (record %zu)", pos,
			                   n + 1);
			goto bad;
		}
		if (d[pos + klen + vlen] != '\n') {
			mallafs_reason_set(why, "no newline after record %zu at byte %zu", n + 1,
			                   pos + klen + vlen);
			goto bad;
		}
		if (n == cap) {
			size_t c = cap ? 2 * cap : 64;
			struct record *nv = realloc(v, c * sizeof(*nv));
			if (!nv) {
				mallafs_reason_set(why, "out of memory");
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap = c;
		}
		v[n++] = (struct record){d + pos, klen, d + pos + klen, vlen};
		pos += klen + vlen + 1;
	}

	size_t end_at = pos;
	char sumtext[17];
	const char *nl = memchr(d + pos, '\n', size - pos);
	size_t q;
	if (size - pos < 4 || memcmp(d + pos, "end ", 4) != 0 ||
	    !(q = parse_num(d, pos + 4, size, ' ', UINT64_MAX, &count)) || !nl ||
	    (size_t)(nl - d) != q + 16) {
		mallafs_reason_set(why, "bad end line at byte %zu", end_at);
		goto bad;
	}
	memcpy(sumtext, d + q, 16);
	sumtext[16] = '\0';
	if (strspn(sumtext, "0123456789abcdef") != 16) {
		mallafs_reason_set(why, "bad checksum text at byte %zu", q);
		goto bad;
	}
	if ((size_t)(nl - d) + 1 != size) {
		mallafs_reason_set(why, "data after the end line at byte %zu",
		                   (size_t)(nl - d) + 1);
		goto bad;
	}
	if (count != n) {
		mallafs_reason_set(why,
		                   "the end line counts %" PRIu64 " records, the file holds %zu",
		                   count, n);
		goto bad;
	}
	uint64_t want = strtoull(sumtext, NULL, 16);
	uint64_t got = fnv1a(FNV_INIT, d, end_at);
	if (want != got) {
		mallafs_reason_set(why,
		                   "checksum mismatch at byte %zu (file says %016" PRIx64
		                   ", content gives %016" PRIx64 ")",
		                   end_at, want, got);
		goto bad;
	}
	*ret = v;
	*ret_n = n;
	return 0;
bad:
	free(v);
	return -EINVAL;
}

/* ---- reading ---- */

/* Reads the whole file, bounded. -ENOENT when it does not exist. */
static int read_file(const char *path, char **ret, size_t *ret_len, struct mallafs_reason *why)
{
	struct stat st;
	char *data = NULL;
	size_t len = 0, cap;
	int r;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		if (r != -ENOENT)
			mallafs_reason_set(why, "cannot open it: %s", strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		mallafs_reason_set(why, "cannot stat it: %s", strerror(-r));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		mallafs_reason_set(why, "it is a directory");
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		mallafs_reason_set(why, "not a regular file");
		goto out;
	}
	if ((uint64_t)st.st_size > PERSIST_FILE_MAX) {
		r = -EFBIG;
		mallafs_reason_set(why, "the file is over 4 GiB");
		goto out;
	}
	/* The size is a hint: read to the end, whatever it is, within bounds. */
	cap = (size_t)st.st_size + 1;
	data = malloc(cap);
	r = -ENOMEM;
	if (!data) {
		mallafs_reason_set(why, "out of memory for %zu bytes", cap);
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap > PERSIST_FILE_MAX) {
				r = -EFBIG;
				mallafs_reason_set(why, "the file is over 4 GiB");
				goto out;
			}
			char *p = realloc(data, cap * 2);
			if (!p) {
				r = -ENOMEM;
				mallafs_reason_set(why, "out of memory");
				goto out;
			}
			data = p;
			cap *= 2;
		}
		ssize_t n = read(fd, data + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			mallafs_reason_set(why, "cannot read it: %s", strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret = data;
	*ret_len = len;
	data = NULL;
	r = 0;
out:
	free(data);
	close(fd);
	return r;
}

/* ---- writing ---- */

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t len = slash == path ? 1 : (size_t)(slash - path);
	char *dir = strndup(path, len);
	if (!dir)
		return -ENOMEM;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* Writes the whole store to p->path atomically: a temporary file next to
 * it, fsync, rename, fsync of the directory. The reason says what failed. */
static int save(struct persist *p, struct mallafs_reason *why)
{
	struct buf b = {0};
	struct stat st;
	char *tmp = NULL;
	int fd = -1;
	mode_t mode = 0600;
	int r = snapshot(p, &b);
	if (r < 0) {
		mallafs_reason_set(why, "cannot snapshot the store: %s", strerror(-r));
		return r;
	}
	if (stat(p->path, &st) == 0 && S_ISREG(st.st_mode))
		mode = st.st_mode & 07777;
	if (asprintf(&tmp, "%s.tmp.%ld", p->path, (long)getpid()) < 0) {
		tmp = NULL;
		r = -ENOMEM;
		mallafs_reason_set(why, "out of memory");
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		r = -errno;
		mallafs_reason_set(why, "cannot create %s: %s", tmp, strerror(-r));
		goto out;
	}
	/* open's mode goes through the umask; the saved file's bits should not. */
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		mallafs_reason_set(why, "cannot chmod %s: %s", tmp, strerror(-r));
		goto fail_unlink;
	}
	r = write_all(fd, b.data, b.len);
	if (r < 0) {
		mallafs_reason_set(why, "cannot write %s: %s", tmp, strerror(-r));
		goto fail_unlink;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		mallafs_reason_set(why, "cannot fsync %s: %s", tmp, strerror(-r));
		goto fail_unlink;
	}
	if (rename(tmp, p->path) < 0) {
		r = -errno;
		mallafs_reason_set(why, "cannot rename %s to %s: %s", tmp, p->path, strerror(-r));
		goto fail_unlink;
	}
	/* The rename is durable only once the directory is. */
	r = fsync_dir_of(p->path);
	if (r < 0) {
		mallafs_reason_set(why, "cannot fsync the directory of %s: %s", p->path,
		                   strerror(-r));
		goto out;
	}
	if (fstat(fd, &st) == 0) {
		char *sp = p->saved_path && strcmp(p->saved_path, p->path) == 0 ? p->saved_path
		                                                                : strdup(p->path);
		if (sp != p->saved_path) {
			free(p->saved_path);
			p->saved_path = sp;
		}
		p->saved = sp != NULL;
		p->saved_dev = st.st_dev;
		p->saved_ino = st.st_ino;
		p->saved_size = st.st_size;
		p->saved_mtime = st.st_mtim;
		p->saved_ctime = st.st_ctim;
	}
	r = 0;
	goto out;
fail_unlink:
	unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	free(tmp);
	free(b.data);
	return r;
}

/* ---- the writer thread ---- */

/* Logs a failed write once, not once per retry, and says when it recovers. */
static void report_save(struct persist *p, int r, const struct mallafs_reason *why)
{
	char line[MALLAFS_REASON_MAX];
	bool log_it = false;
	pthread_mutex_lock(&p->lock);
	if (r < 0) {
		p->unsaved = true;
		if (strcmp(p->last_error, why->text) != 0) {
			snprintf(p->last_error, sizeof(p->last_error), "%s", why->text);
			log_it = true;
		}
	} else {
		p->unsaved = false;
		log_it = p->last_error[0] != '\0';
		p->last_error[0] = '\0';
	}
	snprintf(line, sizeof(line), "%s", why->text);
	pthread_mutex_unlock(&p->lock);
	if (!log_it)
		return;
	if (r < 0)
		mallafs_svc_log(p->svc, LOG_ERR,
		                "persist: cannot save %s: %s (trying again at the next change)",
		                p->path, line);
	else
		mallafs_svc_log(p->svc, LOG_INFO, "persist: saved %s again", p->path);
}

static void ns_to_ts(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / NSEC_PER_SEC);
	ts->tv_nsec = (long)(ns % NSEC_PER_SEC);
}

static void *persist_thread(void *arg)
{
	struct persist *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->dirty && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stopping)
			break;
		int64_t due = p->first_change;
		if (p->last_write > due)
			due = p->last_write;
		due += PERSIST_COALESCE_NS;
		struct timespec ts;
		ns_to_ts(due, &ts);
		while (!p->stopping && now_ns() < due)
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		if (p->stopping)
			break; /* stop writes what is left */
		p->dirty = false;
		p->last_write = now_ns();
		pthread_mutex_unlock(&p->lock);

		struct mallafs_reason why = {{0}};
		int r = save(p, &why);
		report_save(p, r, &why);

		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- start: load or create ---- */

static bool is_our_file(struct persist *p, const struct stat *st)
{
	return p->saved && p->saved_path && strcmp(p->saved_path, p->path) == 0 &&
	       st->st_dev == p->saved_dev && st->st_ino == p->saved_ino &&
	       st->st_size == p->saved_size && st->st_mtim.tv_sec == p->saved_mtime.tv_sec &&
	       st->st_mtim.tv_nsec == p->saved_mtime.tv_nsec &&
	       st->st_ctim.tv_sec == p->saved_ctime.tv_sec &&
	       st->st_ctim.tv_nsec == p->saved_ctime.tv_nsec;
}

static int count_one(const char *key, const void *value, size_t len, const struct timespec *mtime,
                     void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

/* Loads p->path, creates it, or (our own file) leaves the store as it is.
 * *ret_dirty says whether the file must be written again soon. */
static int load_or_create(struct persist *p, bool *ret_dirty, struct mallafs_reason *why)
{
	struct mallafs_reason pr = {{0}};
	struct record *recs = NULL;
	size_t nrecs = 0, nkeys = 0;
	char *data = NULL, *key = NULL;
	size_t len = 0;
	struct stat st;

	*ret_dirty = false;
	if (stat(p->path, &st) == 0 && S_ISREG(st.st_mode) && is_our_file(p, &st)) {
		*ret_dirty = true;
		return 0;
	}

	int r = read_file(p->path, &data, &len, &pr);
	if (r == -ENOENT) {
		r = save(p, &pr);
		if (r < 0)
			mallafs_reason_set(why, "%s does not exist and cannot be created: %s",
			                   p->path, pr.text);
		return r;
	}
	if (r == 0)
		r = parse_file(data, len, &recs, &nrecs, &pr);
	if (r < 0)
		goto fail;

	key = malloc(PERSIST_KEY_MAX + 1);
	r = key ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < nrecs; i++) {
		memcpy(key, recs[i].key, recs[i].klen);
		key[recs[i].klen] = '\0';
		r = mallafs_store_load(p->svc, key, recs[i].value, recs[i].vlen);
		if (r < 0)
			mallafs_reason_set(&pr, "cannot store key %zu of %zu: %s", i + 1, nrecs,
			                   strerror(-r));
	}
	if (r < 0)
		goto fail;
	/* Keys the store held that the file does not: write the union. */
	if (mallafs_store_foreach(p->svc, count_one, &nkeys) == 0 && nkeys != nrecs)
		*ret_dirty = true;
	free(key);
	free(recs);
	free(data);
	return 0;
fail:
	mallafs_reason_set(why, "cannot load %s: %s", p->path, pr.text[0] ? pr.text : strerror(-r));
	free(key);
	free(recs);
	free(data);
	return r;
}

/* ---- callbacks ---- */

static void persist_fini(void *state)
{
	struct persist *p = state;
	if (!p)
		return;
	free(p->path);
	free(p->saved_path);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static int persist_init(struct mallafs_svc *svc, const struct mallafs_plugin *self,
                        void **ret_state)
{
	struct persist *p = calloc(1, sizeof(*p));
	int r;
	if (!p)
		return -ENOMEM;
	p->svc = svc;
	p->self = self;
	r = -pthread_mutex_init(&p->lock, NULL);
	if (r < 0)
		goto fail_mutex;
	r = pu_cond_init_monotonic(&p->cond);
	if (r < 0)
		goto fail_cond;
	*ret_state = p;
	return 0;
fail_cond:
	pthread_mutex_destroy(&p->lock);
fail_mutex:
	free(p);
	return r;
}

static int check_path(const char *v, struct mallafs_reason *why)
{
	char buf[96];
	if (!v || !*v)
		return 0;
	if (v[0] != '/') {
		mallafs_reason_set(why, "path must be absolute, not '%s'",
		                   pu_excerpt(v, buf, sizeof(buf)));
		return -EINVAL;
	}
	if (v[strlen(v) - 1] == '/') {
		mallafs_reason_set(why, "path must name a file, not a directory: '%s'",
		                   pu_excerpt(v, buf, sizeof(buf)));
		return -EINVAL;
	}
	if (strlen(v) + PERSIST_TMP_EXTRA >= 4096) {
		mallafs_reason_set(why, "path is too long (%zu bytes)", strlen(v));
		return -EINVAL;
	}
	return 0;
}

static int persist_merge(void *state, const struct mallafs_cfg *old,
                         const struct mallafs_cfg *update, struct mallafs_cfg *merged,
                         struct mallafs_reason *why)
{
	struct persist *p = state;
	return check_path(mallafs_setting(merged, p->self, "path"), why);
}

static int persist_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct persist *p = state;
	const char *path = mallafs_setting(cfg, p->self, "path");
	bool dirty = false;
	int r = check_path(path, why);
	if (r < 0)
		return r;
	free(p->path);
	p->path = NULL;
	if (!path || !*path)
		return 0;
	p->path = strdup(path);
	if (!p->path)
		return -ENOMEM;

	r = load_or_create(p, &dirty, why);
	if (r < 0)
		goto fail;

	pthread_mutex_lock(&p->lock);
	p->stopping = false;
	p->dirty = dirty;
	p->unsaved = false;
	p->first_change = now_ns();
	p->last_write = 0;
	p->last_error[0] = '\0';
	pthread_mutex_unlock(&p->lock);

	r = pu_thread_start(&p->thread, "mallafs-persist", persist_thread, p);
	if (r < 0) {
		mallafs_reason_set(why, "cannot start the writer thread: %s", strerror(-r));
		goto fail;
	}
	p->thread_started = true;
	return 0;
fail:
	free(p->path);
	p->path = NULL;
	return r;
}

static void persist_stop(void *state)
{
	struct persist *p = state;
	if (!p->path)
		return;
	if (p->thread_started) {
		pthread_mutex_lock(&p->lock);
		p->stopping = true;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
		p->thread_started = false;
	}
	/* The hooks are off by now: nothing marks the store dirty any more. */
	pthread_mutex_lock(&p->lock);
	bool flush = p->dirty || p->unsaved;
	p->dirty = false;
	pthread_mutex_unlock(&p->lock);
	if (flush) {
		struct mallafs_reason why = {{0}};
		int r = save(p, &why);
		if (r < 0)
			mallafs_svc_log(p->svc, LOG_ERR, "persist: cannot save %s at stop: %s",
			                p->path, why.text);
		else
			report_save(p, r, &why);
	}
	free(p->path);
	p->path = NULL;
}

static enum mallafs_update persist_updated(void *state, const struct mallafs_cfg *old,
                                           const struct mallafs_cfg *cfg,
                                           struct mallafs_reason *why)
{
	struct persist *p = state;
	const char *was = mallafs_setting(old, p->self, "path");
	const char *now = mallafs_setting(cfg, p->self, "path");
	char b1[96], b2[96];
	if (!was)
		was = "";
	if (!now)
		now = "";
	if (strcmp(was, now) == 0)
		return MALLAFS_UPDATE_OK;
	if (!*now)
		mallafs_reason_set(why, "path unset: no longer persisting to '%s'",
		                   pu_excerpt(was, b1, sizeof(b1)));
	else if (!*was)
		mallafs_reason_set(why, "path set to '%s'", pu_excerpt(now, b2, sizeof(b2)));
	else
		mallafs_reason_set(why, "path changed from '%s' to '%s'",
		                   pu_excerpt(was, b1, sizeof(b1)),
		                   pu_excerpt(now, b2, sizeof(b2)));
	return MALLAFS_UPDATE_RESTART;
}

static void persist_store_after(void *state, const struct mallafs_store_op *op)
{
	struct persist *p = state;
	if (!p->path || op->code == MALLAFS_OP_GET || op->code == MALLAFS_OP_LIST || op->result < 0)
		return;
	pthread_mutex_lock(&p->lock);
	/* One wake-up per write cycle: later changes find the flag set. */
	if (!p->dirty) {
		p->dirty = true;
		p->first_change = now_ns();
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

const struct mallafs_plugin mallafs_plugin_persist = {
        MALLAFS_PLUGIN_INIT,
        .name = "persist",
        .settings = persist_settings,
        /* lifecycle and configuration */
        .init = persist_init,
        .fini = persist_fini,
        .start = persist_start,
        .stop = persist_stop,
        .config_merge = persist_merge,
        .updated = persist_updated,
        /* store hooks */
        .store_after = persist_store_after,
};
