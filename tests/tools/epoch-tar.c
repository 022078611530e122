/* epoch-tar: the libepoch tar reader and writer from the shell, for integration scenarios
 * (cocoon-sim export → list/extract, compatibility with GNU tar and Python's tarfile).
 *
 *   epoch-tar list [FILE]                    one line per entry:
 *                                            NAME TYPE MODE SIZE [sparse LOGICAL MAP]
 *   epoch-tar extract DIR [FILE]             regular files (sparse ones keep their holes)
 *                                            and directories, into the existing DIR
 *   epoch-tar create [--sparse] [-C DIR] NAME...   an archive of the files on stdout
 *   epoch-tar header NAME SIZE               just the header blocks of a SIZE-byte file
 *
 * FILE defaults to stdin. Exit 0 ok, 1 on any error (the reader's message on stderr), 2 on
 * usage errors. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../../epoch-client/tar.h"

struct extract {
	int dirfd;
	int fd;
	bool sparse;
	struct tar_sparse_out out; /* borrows the entry's map, valid until its end */
	struct tar_reader *r;
};

static int list_on_entry(const struct tar_entry *e, void *userdata)
{
	_cleanup_(freep) char *map = NULL;

	printf("%s %c %04o %" PRIu64, e->name, (char)e->type, e->mode, e->size);
	if (e->sparse && tar_sparse_map_format(e->sparse_map, e->n_sparse, &map) >= 0)
		printf(" sparse %" PRIu64 " %s", e->sparse_size, map);
	printf("\n");
	return 0;
}

/* mkdir -p of the directories leading to name, below dirfd. */
static int make_parents(int dirfd, const char *name)
{
	_cleanup_(freep) char *p = strdup(name);

	if (!p)
		return -ENOMEM;
	for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (*p && mkdirat(dirfd, p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}

static int extract_on_entry(const struct tar_entry *e, void *userdata)
{
	struct extract *x = userdata;
	int k = make_parents(x->dirfd, e->name);

	if (k < 0)
		return k;
	if (e->type == TAR_TYPE_DIRECTORY)
		return mkdirat(x->dirfd, e->name, e->mode) < 0 && errno != EEXIST ? -errno : 0;
	if (e->type != TAR_TYPE_REGULAR) {
		tar_reader_set_error(x->r, "type '%c' cannot be extracted", (char)e->type);
		return -EOPNOTSUPP;
	}
	x->fd =
	    openat(x->dirfd, e->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (x->fd < 0) {
		tar_reader_set_error(x->r, "cannot create: %s", strerror(errno));
		return -errno;
	}
	x->sparse = e->sparse;
	if (e->sparse)
		tar_sparse_out_init(&x->out, x->fd, e->sparse_map, e->n_sparse);
	return 0;
}

static int extract_on_data(const struct tar_entry *e, uint64_t offset, const void *data, size_t len,
			   void *userdata)
{
	struct extract *x = userdata;

	if (x->fd < 0)
		return 0;
	return x->sparse ? tar_sparse_out_write(&x->out, data, len)
			 : tar_sink_fd(data, len, &x->fd);
}

static int extract_on_entry_end(const struct tar_entry *e, void *userdata)
{
	struct extract *x = userdata;
	int k = 0;

	if (x->fd < 0)
		return 0;
	if (x->sparse)
		k = tar_sparse_out_finish(&x->out, e->sparse_size);
	if (k >= 0 && fchmod(x->fd, e->mode) < 0)
		k = -errno;
	if (close(x->fd) < 0 && k >= 0)
		k = -errno;
	x->fd = -EBADF;
	return k;
}

/* Feed fd to the reader to the end of the input; stdin is drained even after the
 * end-of-archive marker so a producer never sees EPIPE. */
static int feed_fd(struct tar_reader *r, int fd)
{
	static char chunk[256 * 1024];
	int k = 0;

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if (k == 0)
			k = tar_reader_feed(r, chunk, (size_t)n);
		if (k < 0)
			break;
	}
	return k < 0 ? k : tar_reader_finish(r);
}

static int open_input(const char *path)
{
	return path && !streq(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
}

static int cmd_read(const struct tar_reader_ops *ops, struct extract *x, const char *path)
{
	_cleanup_(tar_reader_freep) struct tar_reader *r = NULL;
	int fd = open_input(path), k;

	if (fd < 0) {
		fprintf(stderr, "epoch-tar: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (tar_reader_new(ops, x, &r) < 0)
		return 1;
	if (x)
		x->r = r;
	k = feed_fd(r, fd);
	if (fd != STDIN_FILENO)
		close(fd);
	if (k < 0) {
		fprintf(stderr, "epoch-tar: %s\n",
			tar_reader_error(r) ? tar_reader_error(r) : strerror(-k));
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_create(int argc, char **argv)
{
	_cleanup_(tar_writer_freep) struct tar_writer *w = NULL;
	int out = STDOUT_FILENO, dirfd = AT_FDCWD, k;
	bool sparse = false;
	int i = 2;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (streq(argv[i], "--sparse"))
			sparse = true;
		else if (streq(argv[i], "-C") && i + 1 < argc) {
			dirfd = open(argv[++i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dirfd < 0) {
				fprintf(stderr, "epoch-tar: %s: %s\n", argv[i], strerror(errno));
				return 1;
			}
		} else
			return 2;
	}
	if (tar_writer_new(tar_sink_fd, &out, &w) < 0)
		return 1;
	for (; i < argc; i++) {
		struct stat st;
		int fd = openat(dirfd, argv[i], O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fstat(fd, &st) < 0) {
			fprintf(stderr, "epoch-tar: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			struct tar_entry e = { .name = argv[i],
					       .type = TAR_TYPE_DIRECTORY,
					       .mode = st.st_mode & 07777,
					       .mtime = st.st_mtime };

			k = tar_writer_begin(w, &e);
			if (k >= 0)
				k = tar_writer_end(w);
		} else
			k = tar_writer_add_fd(w, argv[i], st.st_mode & 07777, st.st_mtime, fd,
					      sparse);
		close(fd);
		if (k < 0) {
			fprintf(stderr, "epoch-tar: %s: %s\n", argv[i], strerror(-k));
			return 1;
		}
	}
	return tar_writer_finish(w) < 0 ? 1 : 0;
}

/* Only the header blocks of a regular file of `size` bytes: with the data left as a hole
 * in the archive file, other tools can be shown entries of any size. */
static int cmd_header(const char *name, const char *size)
{
	_cleanup_(buf_free) struct buf out = BUF_INIT(0);
	struct tar_entry e = { .name = (char *)name, .type = TAR_TYPE_REGULAR, .mode = 0644 };
	_cleanup_(freep) char *err = NULL;
	char *end;
	int fd = STDOUT_FILENO;

	errno = 0;
	e.size = strtoull(size, &end, 10);
	if (errno || *end || end == size)
		return 2;
	if (tar_header_format(&e, &out, &err) < 0) {
		fprintf(stderr, "epoch-tar: %s\n", err ? err : "invalid entry");
		return 1;
	}
	return tar_sink_fd(out.data, out.len, &fd) < 0 ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: epoch-tar list [FILE]\n"
			"       epoch-tar extract DIR [FILE]\n"
			"       epoch-tar create [--sparse] [-C DIR] NAME...\n"
			"       epoch-tar header NAME SIZE\n");
}

int main(int argc, char **argv)
{
	int r = 2;

	if (argc >= 2 && streq(argv[1], "list") && argc <= 3) {
		const struct tar_reader_ops ops = { .on_entry = list_on_entry };

		r = cmd_read(&ops, NULL, argv[2]);
	} else if (argc >= 3 && streq(argv[1], "extract") && argc <= 4) {
		const struct tar_reader_ops ops = { extract_on_entry, extract_on_data,
						    extract_on_entry_end };
		struct extract x = { .fd = -EBADF };

		x.dirfd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (x.dirfd < 0) {
			fprintf(stderr, "epoch-tar: %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		r = cmd_read(&ops, &x, argv[3]);
		if (x.fd >= 0)
			close(x.fd);
		close(x.dirfd);
	} else if (argc >= 2 && streq(argv[1], "create"))
		r = cmd_create(argc, argv);
	else if (argc == 4 && streq(argv[1], "header"))
		r = cmd_header(argv[2], argv[3]);
	if (r == 2)
		usage();
	return r;
}
