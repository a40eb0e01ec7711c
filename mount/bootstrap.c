/* SPDX-License-Identifier: MIT */
#include "bootstrap_i.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "kv.h"
#include "nodecfg.h"
#include "runtime.h"
#include "service.h"
#include "util.h"

/* A bootstrap file is a handful of lines; anything this large is a mistake
 * (a device, a log file given by accident), not configuration. */
#define BOOT_MAX_BYTES (16u << 20)

#define SERVICES_PREFIX "services."
#define CONFIG_PREFIX "config."

/* The message is one line: a value quoted in it may span several (a
 * continuation line), so its newlines are shown as "\n". */
int mboot_fail(struct boot *b, int line, int r, const char *fmt, ...)
{
	if (!b->err || !b->errlen)
		return r;
	int n = line > 0 ? snprintf(b->err, b->errlen, "%s:%d: ", b->path, line)
	                 : snprintf(b->err, b->errlen, "%s: ", b->path);
	if (n >= 0 && (size_t)n < b->errlen) {
		char why[1024];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		size_t o = (size_t)n;
		for (const char *p = why; *p; p++) {
			if (o + (*p == '\n' ? 2 : 1) >= b->errlen)
				break;
			if (*p == '\n') {
				b->err[o++] = '\\';
				b->err[o++] = 'n';
			} else {
				b->err[o++] = *p;
			}
		}
		b->err[o] = '\0';
	}
	return r;
}

static int read_whole(const char *path, char **ret_text, size_t *ret_len)
{
	struct mu_buf buf = {0};
	int r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	for (;;) {
		r = mu_buf_reserve(&buf, 65536);
		if (r < 0)
			break;
		/* mu_buf keeps the last byte for its NUL. */
		ssize_t n = read(fd, buf.data + buf.len, buf.cap - buf.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		buf.len += (size_t)n;
		if (buf.len > BOOT_MAX_BYTES) {
			r = -EFBIG;
			break;
		}
	}
	close(fd);
	if (r < 0) {
		mu_buf_free(&buf);
		return r;
	}
	*ret_text = mu_buf_steal(&buf, ret_len);
	return *ret_text ? 0 : -ENOMEM;
}

static int lined_push(struct lined_list *l, const char *name, const char *value, int line)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct lined *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct lined){.name = name, .value = value, .line = line};
	return 0;
}

static int lined_cmp(const void *a, const void *b)
{
	const struct lined *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return strcmp(x->name, y->name);
}

struct collect_ctx {
	const struct mallafs_cfg *file;
	const char *section;
	struct lined_list *list;
};

static int collect_section(const char *section, void *arg)
{
	struct collect_ctx *c = arg;
	return lined_push(c->list, section, NULL, mcfg_line(c->file, section, NULL));
}

static int collect_key(const char *key, const char *value, void *arg)
{
	struct collect_ctx *c = arg;
	return lined_push(c->list, key, value, mcfg_line(c->file, c->section, key));
}

/* The file's sections, or one section's keys, in file order: mcfg keeps
 * them sorted by name, but errors and creation follow the text. */
static int list_sections(const struct mallafs_cfg *file, struct lined_list *ret)
{
	struct collect_ctx c = {.file = file, .list = ret};
	int r = mcfg_foreach_section(file, collect_section, &c);
	if (r == 0 && ret->n)
		qsort(ret->v, ret->n, sizeof(*ret->v), lined_cmp);
	return r;
}

int mboot_list_keys(const struct mallafs_cfg *file, const char *section, struct lined_list *ret)
{
	struct collect_ctx c = {.file = file, .section = section, .list = ret};
	int r = mallafs_cfg_foreach(file, section, collect_key, &c);
	if (r == 0 && ret->n)
		qsort(ret->v, ret->n, sizeof(*ret->v), lined_cmp);
	return r;
}

static void item_fini(struct boot_item *it)
{
	free(it->name);
	for (size_t i = 0; i < it->nplugins; i++)
		free(it->plugins[i]);
	free(it->plugins);
	mcfg_free(it->cfg);
}

/* The item of that kind and name, created (at line) when absent. */
static int item_get(struct boot *b, enum item_kind kind, const char *name, size_t len, int line,
                    struct boot_item **ret)
{
	/* Backwards: a service's sections usually follow one another. */
	for (size_t i = b->nitems; i-- > 0;) {
		struct boot_item *it = &b->items[i];
		if (it->kind == kind && strlen(it->name) == len &&
		    memcmp(it->name, name, len) == 0) {
			*ret = it;
			return 0;
		}
	}
	if (b->nitems == b->capitems) {
		size_t cap = b->capitems ? 2 * b->capitems : 8;
		struct boot_item *v = realloc(b->items, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		b->items = v;
		b->capitems = cap;
	}
	char *copy = mu_memdup0(name, len);
	if (!copy)
		return -ENOMEM;
	b->items[b->nitems] = (struct boot_item){.kind = kind, .name = copy, .line = line};
	*ret = &b->items[b->nitems++];
	return 0;
}

/* "a, b ,c" -> {"a", "b", "c"}; a blank value is an empty list. */
static int parse_plugins(struct boot *b, struct boot_item *it, const char *value, int line)
{
	const char *p = value;
	while (isspace((unsigned char)*p))
		p++;
	if (!*p)
		return 0;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *s = p;
		while (n && isspace((unsigned char)*s)) {
			s++;
			n--;
		}
		while (n && isspace((unsigned char)s[n - 1]))
			n--;
		if (!n)
			return mboot_fail(b, line, -EINVAL, "service %s: empty plugin name in '%s'",
			                  it->name, value);
		if (mu_name_check(s, n, MU_NAME_STRICT) < 0)
			return mboot_fail(b, line, -EINVAL,
			                  "service %s: invalid plugin name '%.*s'", it->name,
			                  (int)n, s);
		char **v = realloc(it->plugins, (it->nplugins + 1) * sizeof(*v));
		if (!v)
			return mboot_fail(b, line, -ENOMEM, "out of memory");
		it->plugins = v;
		it->plugins[it->nplugins] = mu_memdup0(s, n);
		if (!it->plugins[it->nplugins])
			return mboot_fail(b, line, -ENOMEM, "out of memory");
		it->nplugins++;
		if (!end)
			return 0;
		p = end + 1;
	}
}

/* An id: a number, or a name lookup gives it. */
static bool parse_id(const char *s, unsigned long *ret)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v >= (unsigned long)(uid_t)-1)
		return false;
	*ret = v;
	return true;
}

/* owner = USER[:GROUP], names or numbers; without GROUP, USER's own group. */
static int parse_owner(struct boot *b, struct boot_item *it, const char *value, int line)
{
	char user[256], buf[4096];
	const char *colon = strchr(value, ':');
	const char *group = colon ? colon + 1 : NULL;
	size_t ulen = colon ? (size_t)(colon - value) : strlen(value);
	struct passwd pw, *pwr = NULL;
	struct group gr, *grr = NULL;
	unsigned long id;

	if (ulen == 0 || ulen >= sizeof(user) || (group && !group[0]))
		return mboot_fail(b, line, -EINVAL,
		                  "service %s: owner must be USER or USER:GROUP, not '%s'",
		                  it->name, value);
	memcpy(user, value, ulen);
	user[ulen] = '\0';
	if (parse_id(user, &id)) {
		it->uid = (uid_t)id;
		if (getpwuid_r(it->uid, &pw, buf, sizeof(buf), &pwr) == 0 && pwr)
			it->gid = pwr->pw_gid;
		else if (!group)
			return mboot_fail(
			        b, line, -EINVAL,
			        "service %s: uid %s has no user entry: give its group too "
			        "(owner = %s:GROUP)",
			        it->name, user, user);
	} else if (getpwnam_r(user, &pw, buf, sizeof(buf), &pwr) == 0 && pwr) {
		it->uid = pwr->pw_uid;
		it->gid = pwr->pw_gid;
	} else {
		return mboot_fail(b, line, -EINVAL, "service %s: no user named '%s'", it->name,
		                  user);
	}
	if (group) {
		if (parse_id(group, &id))
			it->gid = (gid_t)id;
		else if (getgrnam_r(group, &gr, buf, sizeof(buf), &grr) == 0 && grr)
			it->gid = grr->gr_gid;
		else
			return mboot_fail(b, line, -EINVAL, "service %s: no group named '%s'",
			                  it->name, group);
	}
	it->owned = true;
	return 0;
}

/* [services.NAME]: the chain, the admin status and the owner. */
static int check_declaration(struct boot *b, struct boot_item *it, const char *section, int line)
{
	struct lined_list keys = {0};
	int r = mboot_list_keys(b->file, section, &keys);
	if (r < 0) {
		r = mboot_fail(b, line, r, "out of memory");
		goto out;
	}
	it->declared = true;
	it->decl_line = line;
	for (size_t i = 0; i < keys.n; i++) {
		const struct lined *k = &keys.v[i];
		if (strcmp(k->name, "plugins") == 0) {
			it->plugins_line = k->line;
			r = parse_plugins(b, it, k->value, k->line);
		} else if (strcmp(k->name, "admin") == 0) {
			enum msvc_admin ad;
			it->admin = k->value;
			if (msvc_admin_parse(k->value, strlen(k->value), &ad) < 0)
				r = mboot_fail(
				        b, k->line, -EINVAL,
				        "service %s: admin must be active, pause or inactive, not "
				        "'%s'",
				        it->name, k->value);
		} else if (strcmp(k->name, "owner") == 0) {
			r = parse_owner(b, it, k->value, k->line);
		} else {
			r = mboot_fail(b, k->line, -EINVAL, "unknown key '%s' in [%s]", k->name,
			               section);
		}
		if (r < 0)
			goto out;
	}
out:
	free(keys.v);
	return r;
}

/* [services.NAME.SECTION]: a section of the service's initial configuration. */
static int add_config_section(struct boot *b, struct boot_item *it, const char *section,
                              const char *sub, int line)
{
	if (mu_name_check_str(sub, MU_NAME_STRICT) < 0)
		return mboot_fail(b, line, -EINVAL, "invalid section name '%s'", sub);
	if (!it->cfg) {
		it->cfg = mcfg_new();
		if (!it->cfg)
			return mboot_fail(b, line, -ENOMEM, "out of memory");
	}
	/* An empty section still exists, as after `mkdir config/SECTION`. */
	struct lined_list keys = {0};
	int r = mcfg_add_section(it->cfg, sub);
	if (r == 0)
		r = mboot_list_keys(b->file, section, &keys);
	if (r < 0) {
		r = mboot_fail(b, line, r, "%s", strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < keys.n; i++) {
		const struct lined *k = &keys.v[i];
		const char *bad = NULL;
		r = mallafs_cfg_set(it->cfg, sub, k->name, k->value);
		if (r == -EINVAL)
			mcfg_key_check(k->name, &bad);
		if (r < 0) {
			r = mboot_fail(b, k->line, r, "invalid key '%s' in [%s]: %s", k->name,
			               section, bad ? bad : strerror(-r));
			goto out;
		}
	}
out:
	free(keys.v);
	return r;
}

static int check_section(struct boot *b, const char *section, int line)
{
	struct boot_item *it;
	int r;

	if (strncmp(section, SERVICES_PREFIX, strlen(SERVICES_PREFIX)) == 0) {
		const char *name = section + strlen(SERVICES_PREFIX);
		const char *dot = strchr(name, '.');
		size_t len = dot ? (size_t)(dot - name) : strlen(name);
		if (mu_name_check(name, len, MU_NAME_STRICT) < 0)
			return mboot_fail(b, line, -EINVAL, "invalid service name '%.*s'", (int)len,
			                  name);
		r = item_get(b, ITEM_SERVICE, name, len, line, &it);
		if (r < 0)
			return mboot_fail(b, line, r, "out of memory");
		if (dot)
			return add_config_section(b, it, section, dot + 1, line);
		return check_declaration(b, it, section, line);
	}
	if (strncmp(section, CONFIG_PREFIX, strlen(CONFIG_PREFIX)) == 0) {
		const char *app = section + strlen(CONFIG_PREFIX);
		if (mu_name_check_str(app, MU_NAME_STRICT) < 0)
			return mboot_fail(b, line, -EINVAL, "invalid app name '%s'", app);
		r = item_get(b, ITEM_APP, app, strlen(app), line, &it);
		if (r < 0)
			return mboot_fail(b, line, r, "out of memory");
		it->section = section;
		return 0;
	}
	return mboot_fail(b, line, -EINVAL, "unknown section [%s]", section);
}

int mboot_create_app(struct boot *b, struct boot_item *it)
{
	struct mnodecfg *nc = mrt_nodecfg(b->rt);
	struct lined_list keys = {0};
	int r = mnodecfg_app_create(nc, it->name);
	/* An app made by an earlier file is extended, not an error. */
	if (r < 0 && r != -EEXIST) {
		r = mboot_fail(b, it->line, r, "config %s: %s", it->name, strerror(-r));
		goto out;
	}
	r = mboot_list_keys(b->file, it->section, &keys);
	if (r < 0) {
		r = mboot_fail(b, it->line, r, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < keys.n; i++) {
		const struct lined *k = &keys.v[i];
		ssize_t n = mnodecfg_write(nc, it->name, k->name, 0, k->value, strlen(k->value),
		                           MKV_REPLACE);
		if (n < 0) {
			r = mboot_fail(b, k->line, (int)n, "config %s: key %s: %s", it->name,
			               k->name, strerror((int)-n));
			goto out;
		}
	}
	r = 0;
out:
	free(keys.v);
	return r;
}

/* The line of the key (or section) a refusal names, when the file holds it:
 * [services.NAME.SECTION] KEY. 0 when it names none or the file has none
 * (a plugin's default). */
int mboot_reason_line(struct boot *b, const struct boot_item *it, const struct mallafs_reason *why)
{
	char section[sizeof(SERVICES_PREFIX) + MU_NAME_MAX + 1 + MALLAFS_REASON_NAME_MAX];
	if (!why->section[0])
		return 0;
	int n = snprintf(section, sizeof(section), SERVICES_PREFIX "%s.%s", it->name, why->section);
	if (n < 0 || (size_t)n >= sizeof(section))
		return 0;
	int line = why->key[0] ? mcfg_line(b->file, section, why->key) : 0;
	return line ? line : mcfg_line(b->file, section, NULL);
}

int mboot_create_service(struct boot *b, struct boot_item *it)
{
	struct mallafs_reason why = {{0}};
	/* An owned service starts once it is its owner's, so that its hooks
	 * never run as anyone else. */
	const char *admin = it->owned ? "inactive" : it->admin;
	int r = mrt_service_create_full(b->rt, it->name, (const char *const *)it->plugins,
	                                it->nplugins, it->cfg, admin, &why);
	if (r == 0 && it->owned) {
		struct mallafs_svc *svc = mrt_service_get(b->rt, it->name);
		enum msvc_admin ad = MSVC_ADMIN_ACTIVE;
		if (it->admin)
			msvc_admin_parse(it->admin, strlen(it->admin), &ad);
		r = svc ? 0 : -ENOENT;
		if (svc) {
			msvc_set_owner(svc, it->uid, it->gid);
			r = msvc_set_admin(svc, ad);
			if (r < 0) {
				struct msvc_status st;
				msvc_status(svc, &st);
				const char *sp = strchr(st.last_error, ' '); /* after its time */
				snprintf(why.text, sizeof(why.text), "%.*s",
				         (int)sizeof(why.text) - 1, sp ? sp + 1 : st.last_error);
			}
		}
		msvc_unref(svc);
	}
	if (r == 0)
		return 0;
	int line = mboot_reason_line(b, it, &why);
	if (!line)
		line = it->plugins_line ? it->plugins_line
		       : it->declared   ? it->decl_line
		                        : it->line;
	return mboot_fail(b, line, r, "service %s: %s", it->name,
	                  why.text[0] ? why.text : strerror(-r));
}

int mboot_parse(struct boot *b)
{
	struct lined_list sections = {0};
	size_t len = 0;
	int r;

	if (b->err && b->errlen)
		b->err[0] = '\0';
	r = read_whole(b->path, &b->text, &len);
	if (r < 0)
		return mboot_fail(b, 0, r, "%s", r == -EFBIG ? "file too large" : strerror(-r));

	char perr[512];
	int line = 0;
	r = mcfg_parse_ini(b->text, len, &b->file, &line, perr, sizeof(perr));
	if (r < 0) {
		/* The parser says "line N: reason"; ours is "PATH:N: reason". */
		const char *msg = perr;
		if (strncmp(msg, "line ", 5) == 0 && strstr(msg, ": "))
			msg = strstr(msg, ": ") + 2;
		return mboot_fail(b, line, r, "%s", msg[0] ? msg : strerror(-r));
	}

	/* Check everything before creating anything, in file order, so a typo
	 * at the end does not leave half a node behind and the first error
	 * reported is the first in the file. */
	r = list_sections(b->file, &sections);
	if (r < 0)
		r = mboot_fail(b, 0, r, "out of memory");
	for (size_t i = 0; r == 0 && i < sections.n; i++)
		r = check_section(b, sections.v[i].name, sections.v[i].line);
	free(sections.v);
	return r;
}

void mboot_fini(struct boot *b)
{
	for (size_t i = 0; i < b->nitems; i++)
		item_fini(&b->items[i]);
	free(b->items);
	mcfg_free(b->file);
	free(b->text);
}

int mboot_load(struct mrt *rt, const char *path, char *err, size_t errlen)
{
	struct boot b = {.rt = rt, .path = path, .err = err, .errlen = errlen};
	int r = mboot_parse(&b);
	/* Items were made in file order of their first section. */
	for (size_t i = 0; r == 0 && i < b.nitems; i++) {
		struct boot_item *it = &b.items[i];
		r = it->kind == ITEM_APP ? mboot_create_app(&b, it) : mboot_create_service(&b, it);
	}
	mboot_fini(&b);
	return r;
}
