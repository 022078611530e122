/* Files that hold state: atomic replacement, capped reads, directory creation, and the
 * `--root DIR` prefix used by tools that operate on a sandboxed file tree (cocoon-net). */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Replace path with data: a temp file ".<name>.XXXXXX" in the same directory (O_EXCL,
 * O_CLOEXEC) is written in full, fsync'd, chmod'ed to exactly `mode` (the umask does not
 * apply), renamed over path, and the directory is fsync'd. On any error the old file is
 * untouched and the temp file removed. Returns 0 or -errno (-ENOENT/-ENOTDIR when the
 * directory is missing, -EFBIG/-ENOSPC when the data does not fit, ...). */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Read a whole file (any kind: regular, /proc, pipe) into a NUL-terminated allocation.
 * -EFBIG when it holds more than cap bytes. ret_len may be NULL. */
int fs_read_file(const char *path, size_t cap, char **ret, size_t *ret_len);

/* mkdir -p: create path and its missing parents with `mode` (masked by the umask, as
 * mkdir(2)). Existing directories are fine; -ENOTDIR when a component is not one. */
int fs_mkdir_p(const char *path, mode_t mode);

/* root + path with exactly one '/' between them: ("/srv/r", "/etc/x") → "/srv/r/etc/x".
 * A NULL, empty or "/" root returns a copy of path; path "/" returns the root itself.
 * No ".." resolution: this relocates a tree, it is not a security boundary. -EINVAL for an
 * empty path. */
int fs_path_join(const char *root, const char *path, char **ret);
