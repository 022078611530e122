/* fsutil: atomic replacement (content, mode, no temp files left, old content kept on every
 * failure), capped reads, mkdir -p, and the --root path join table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cocoon/fsutil.h"

static char tmpdir[] = "/tmp/test-fsutil-XXXXXX";

static int setup(void **state)
{
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
	return 0;
}

static char *at(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
	return buf[i];
}

static void assert_file(const char *path, const char *expected)
{
	char *data = NULL;
	size_t len = 0;

	assert_int_equal(fs_read_file(path, 1 << 20, &data, &len), 0);
	assert_int_equal(len, strlen(expected));
	assert_string_equal(data, expected);
	free(data);
}

/* Entries of a directory other than . and .., to spot leftover temp files. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void test_write_atomic_replaces(void **state)
{
	struct stat st;

	assert_int_equal(fs_write_atomic(at("state.json"), "{\"v\":1}", 7, 0640), 0);
	assert_file(at("state.json"), "{\"v\":1}");
	assert_int_equal(stat(at("state.json"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);

	assert_int_equal(fs_write_atomic(at("state.json"), "{\"v\":2,\"more\":true}", 19, 0600), 0);
	assert_file(at("state.json"), "{\"v\":2,\"more\":true}");
	assert_int_equal(stat(at("state.json"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_entries(tmpdir), 1);

	/* empty content is a valid file */
	assert_int_equal(fs_write_atomic(at("empty"), "", 0, 0644), 0);
	assert_file(at("empty"), "");
}

static void test_write_atomic_relative_path(void **state)
{
	char cwd[512];

	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(tmpdir), 0);
	assert_int_equal(fs_write_atomic("plain", "x", 1, 0644), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_file(at("plain"), "x");
	assert_int_equal(count_entries(tmpdir), 1);
}

static void test_write_atomic_bad_dir(void **state)
{
	/* A "directory" that is a file: ENOTDIR even for root. */
	assert_int_equal(fs_write_atomic(at("file"), "old", 3, 0644), 0);
	assert_int_equal(fs_write_atomic(at("file/child"), "new", 3, 0644), -ENOTDIR);
	assert_int_equal(fs_write_atomic(at("missing/child"), "new", 3, 0644), -ENOENT);
	assert_int_equal(fs_write_atomic(at("trailing/"), "new", 3, 0644), -EINVAL);
	assert_int_equal(fs_write_atomic("", "new", 3, 0644), -EINVAL);
	assert_file(at("file"), "old");
	assert_int_equal(count_entries(tmpdir), 1);
}

static void test_write_atomic_write_failure_keeps_old(void **state)
{
	struct rlimit saved, small;
	char big[8192];
	int r;

	assert_int_equal(fs_write_atomic(at("cert.pem"), "old content", 11, 0644), 0);
	/* The file size limit makes the write fail half way, whatever our privileges. */
	memset(big, 'x', sizeof big);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	small = saved;
	small.rlim_cur = 4096;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	r = fs_write_atomic(at("cert.pem"), big, sizeof big, 0644);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(r, -EFBIG);
	assert_file(at("cert.pem"), "old content");
	assert_int_equal(count_entries(tmpdir), 1);
}

static void test_write_atomic_rename_failure_keeps_old(void **state)
{
	/* A non-empty directory cannot be replaced by a file: rename fails after the temp
	 * file was written, which must still be cleaned up. */
	assert_int_equal(mkdir(at("dir"), 0755), 0);
	assert_int_equal(fs_write_atomic(at("dir/inner"), "keep", 4, 0644), 0);
	assert_true(fs_write_atomic(at("dir"), "data", 4, 0644) < 0);
	assert_file(at("dir/inner"), "keep");
	assert_int_equal(count_entries(tmpdir), 1);
	assert_int_equal(count_entries(at("dir")), 1);
}

static void test_read_file_cap(void **state)
{
	char *data = NULL;
	size_t len = 0;
	char big[40000];

	assert_int_equal(fs_write_atomic(at("f"), "hello", 5, 0644), 0);
	assert_int_equal(fs_read_file(at("f"), 5, &data, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	free(data);
	data = NULL;
	assert_int_equal(fs_read_file(at("f"), 4, &data, &len), -EFBIG);
	assert_null(data);
	assert_int_equal(fs_read_file(at("f"), 0, &data, NULL), -EFBIG);
	assert_int_equal(fs_read_file(at("nope"), 100, &data, &len), -ENOENT);

	/* larger than one read chunk, and no length wanted */
	memset(big, 'a', sizeof big);
	assert_int_equal(fs_write_atomic(at("big"), big, sizeof big, 0644), 0);
	assert_int_equal(fs_read_file(at("big"), sizeof big, &data, NULL), 0);
	assert_int_equal(strlen(data), sizeof big);
	free(data);
	assert_int_equal(fs_read_file(at("big"), sizeof big - 1, &data, NULL), -EFBIG);

	/* files whose stat size is 0 are read to the end anyway */
	assert_int_equal(fs_read_file("/proc/self/stat", 1 << 16, &data, &len), 0);
	assert_true(len > 0);
	assert_int_equal(strlen(data), len);
	free(data);
}

static void test_mkdir_p(void **state)
{
	struct stat st;

	assert_int_equal(fs_mkdir_p(at("a/b//c/"), 0755), 0);
	assert_int_equal(stat(at("a/b/c"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(fs_mkdir_p(at("a/b/c"), 0755), 0); /* existing is fine */
	assert_int_equal(fs_write_atomic(at("a/file"), "x", 1, 0644), 0);
	assert_int_equal(fs_mkdir_p(at("a/file/d"), 0755), -ENOTDIR);
	assert_int_equal(fs_mkdir_p(at("a/file"), 0755), -ENOTDIR);
	assert_int_equal(fs_mkdir_p("", 0755), -EINVAL);
}

static void test_path_join(void **state)
{
	static const struct {
		const char *root, *path, *expected;
	} table[] = {
		{ "/srv/root", "/etc/cni/net.d", "/srv/root/etc/cni/net.d" },
		{ "/srv/root/", "/etc/x", "/srv/root/etc/x" },
		{ "/srv/root//", "//etc/x", "/srv/root/etc/x" },
		{ "/srv/root", "etc/x", "/srv/root/etc/x" },
		{ "/srv/root", "/", "/srv/root" },
		{ "/srv/root/", "///", "/srv/root" },
		{ "rel", "/etc", "rel/etc" },
		{ NULL, "/etc/x", "/etc/x" },
		{ "", "/etc/x", "/etc/x" },
		{ "/", "/etc/x", "/etc/x" },
		{ "//", "etc/x", "etc/x" },
		{ "/", "/", "/" },
	};

	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		char *s = NULL;

		assert_int_equal(fs_path_join(table[i].root, table[i].path, &s), 0);
		if (strcmp(s, table[i].expected) != 0)
			fail_msg("join(%s, %s) = %s, want %s", table[i].root ?: "NULL",
				 table[i].path, s, table[i].expected);
		free(s);
	}
	{
		char *s = (char *)"untouched";

		assert_int_equal(fs_path_join("/r", "", &s), -EINVAL);
		assert_int_equal(fs_path_join("/r", NULL, &s), -EINVAL);
		assert_string_equal(s, "untouched");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_atomic_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_relative_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_bad_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_write_failure_keeps_old, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_rename_failure_keeps_old, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_file_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
		cmocka_unit_test(test_path_join),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
