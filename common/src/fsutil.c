/* File helpers for state that must survive a crash: atomic replacement (temp file, fsync,
 * rename, fsync of the directory — STYLE.md code rule 8), reads with a size cap so a
 * corrupt or hostile file cannot exhaust memory, mkdir -p, and root-prefixed paths. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cocoon/buf.h"
#include "cocoon/fsutil.h"
#include "cocoon/log.h"

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The rename is only durable once the directory entry is on disk too. */
static int fsync_dir(const char *dir)
{
	_cleanup_(closep) int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Splits path into its directory ("." when there is none) and the temp file template
 * "<dir>/.<name>.XXXXXX". */
static int atomic_names(const char *path, char **ret_dir, char **ret_tmp)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	_cleanup_(freep) char *dir = NULL;
	char *tmp;
	int dir_len = slash ? (int)(slash - path) : 0;

	if (isempty(name) || streq(name, ".") || streq(name, ".."))
		return -EINVAL;
	if (!slash)
		dir = strdup(".");
	else if (dir_len == 0)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)dir_len);
	if (!dir)
		return -ENOMEM;
	if (asprintf(&tmp, "%.*s.%s.XXXXXX", slash ? dir_len + 1 : 0, path, name) < 0)
		return -ENOMEM;
	*ret_dir = TAKE_PTR(dir);
	*ret_tmp = tmp;
	return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	_cleanup_(freep) char *dir = NULL, *tmp = NULL;
	int fd, r;

	if (isempty(path) || (!data && len > 0))
		return -EINVAL;
	r = atomic_names(path, &dir, &tmp);
	if (r < 0)
		return r;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return log_debug_errno(errno, "Cannot create temp file for %s: %m", path);
	r = write_all(fd, data, len);
	if (r >= 0 && fchmod(fd, mode & 07777) < 0)
		r = -errno;
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r >= 0)
		r = -errno;
	if (r >= 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		(void)unlink(tmp);
		return log_debug_errno(r, "Cannot write %s: %m", path);
	}
	r = fsync_dir(dir);
	if (r < 0)
		return log_debug_errno(r, "Cannot sync directory %s after writing %s: %m", dir,
				       path);
	return 0;
}

int fs_read_file(const char *path, size_t cap, char **ret, size_t *ret_len)
{
	_cleanup_(closep) int fd = -EBADF;
	struct buf b = BUF_INIT(0); /* capped by hand below so that cap 0 means "empty only" */
	char chunk[16384];
	char *data;
	size_t len;

	if (isempty(path) || !ret)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			buf_free(&b);
			return r;
		}
		if (n == 0)
			break;
		if ((size_t)n > cap - b.len) {
			buf_free(&b);
			return log_debug_errno(EFBIG, "%s is larger than %zu bytes", path, cap);
		}
		r = buf_append(&b, chunk, (size_t)n);
		if (r < 0) {
			buf_free(&b);
			return r;
		}
	}
	data = buf_steal(&b, &len);
	if (!data)
		return -ENOMEM;
	*ret = data;
	if (ret_len)
		*ret_len = len;
	return 0;
}

static int mkdir_one(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) >= 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int fs_mkdir_p(const char *path, mode_t mode)
{
	_cleanup_(freep) char *p = NULL;
	int r;

	if (isempty(path))
		return -EINVAL;
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	/* Create each prefix ending just before a '/', then the whole path. */
	for (char *s = p + 1; *s; s++) {
		if (*s != '/' || s[-1] == '/')
			continue;
		*s = 0;
		r = mkdir_one(p, mode);
		*s = '/';
		if (r < 0)
			return log_debug_errno(r, "Cannot create directory %.*s: %m", (int)(s - p),
					       p);
	}
	r = mkdir_one(p, mode);
	if (r < 0)
		return log_debug_errno(r, "Cannot create directory %s: %m", p);
	return 0;
}

int fs_path_join(const char *root, const char *path, char **ret)
{
	size_t root_len = root ? strlen(root) : 0;
	char *s;

	if (isempty(path) || !ret)
		return -EINVAL;
	while (root_len > 0 && root[root_len - 1] == '/')
		root_len--;
	while (root_len > 0 && *path == '/')
		path++;
	if (root_len == 0)
		s = strdup(path);
	else if (!*path)
		s = strndup(root, root_len);
	else if (asprintf(&s, "%.*s/%s", (int)root_len, root, path) < 0)
		s = NULL;
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}
