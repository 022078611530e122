/* watch: a burst of writes/renames gives one debounced callback, deletion reports the file
 * gone, a Kubernetes `..data` symlink swap is seen, unrelated names are not, in-place
 * writes (dnsmasq's lease file) are seen, and bad paths are refused. File operations run
 * from timers inside the loop so the debounce window is exercised in real time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cocoon/watch.h"

static char tmpdir[] = "/tmp/test-watch-XXXXXX";
static sd_event *event;

struct calls {
	int n;
	bool exists[8];
	uint64_t at[8];
	bool free_in_callback;
};

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static char *at(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
	return buf[i];
}

static int setup(void **state)
{
	assert_non_null(mkdtemp(tmpdir));
	assert_true(sd_event_new(&event) >= 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	event = sd_event_unref(event);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
	return 0;
}

static void write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(content, f);
	assert_int_equal(fclose(f), 0);
}

static void on_change(struct watch *w, bool exists, void *userdata)
{
	struct calls *c = userdata;

	assert_true(c->n < 8);
	c->exists[c->n] = exists;
	c->at[c->n] = now_usec();
	c->n++;
	if (c->free_in_callback)
		watch_free(w);
}

typedef void (*action_fn)(void);

static int on_action(sd_event_source *s, uint64_t usec, void *userdata)
{
	((action_fn)userdata)();
	return 0;
}

static void schedule(uint64_t usec, action_fn fn)
{
	assert_true(sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, usec, 1000, on_action,
					       (void *)fn) >= 0);
}

static void run_for(uint64_t usec)
{
	uint64_t end = now_usec() + usec, now;

	while ((now = now_usec()) < end)
		assert_true(sd_event_run(event, end - now) >= 0);
}

static void replace_by_rename_1(void)
{
	write_file(at(".cert.pem.tmp"), "v1");
	assert_int_equal(rename(at(".cert.pem.tmp"), at("cert.pem")), 0);
}

static void replace_by_rename_2(void)
{
	write_file(at(".cert.pem.tmp"), "v2");
	assert_int_equal(rename(at(".cert.pem.tmp"), at("cert.pem")), 0);
}

static void rewrite_in_place(void)
{
	write_file(at("cert.pem"), "v3");
}

static void remove_cert(void)
{
	assert_int_equal(unlink(at("cert.pem")), 0);
}

static void test_burst_gives_one_callback(void **state)
{
	struct calls c = {};
	struct watch *w = NULL;
	uint64_t start = now_usec();

	assert_int_equal(watch_new(event, at("cert.pem"), on_change, &c, &w), 0);
	assert_string_equal(watch_path(w), at("cert.pem"));
	schedule(5000, replace_by_rename_1);
	schedule(20000, replace_by_rename_2);
	schedule(35000, rewrite_in_place);
	run_for(400000);
	assert_int_equal(c.n, 1);
	assert_true(c.exists[0]);
	/* the window opened by the first event lasted the default debounce */
	assert_true(c.at[0] - start >= 5000 + WATCH_DEBOUNCE_DEFAULT_USEC);

	schedule(1000, remove_cert);
	run_for(300000);
	assert_int_equal(c.n, 2);
	assert_false(c.exists[1]);
	watch_free(w);
}

static void test_debounce_configurable(void **state)
{
	struct calls c = {};
	struct watch *w = NULL;

	assert_int_equal(watch_new(event, at("cert.pem"), on_change, &c, &w), 0);
	watch_set_debounce(w, 20000);
	schedule(5000, replace_by_rename_1);
	schedule(150000, replace_by_rename_2);
	run_for(300000);
	/* the two changes were further apart than the window */
	assert_int_equal(c.n, 2);
	assert_true(c.exists[0] && c.exists[1]);
	assert_true(c.at[1] - c.at[0] >= 100000);
	watch_free(w);
}

static void touch_others(void)
{
	write_file(at("other.pem"), "x");
	write_file(at("cert.pem.bak"), "x");
	assert_int_equal(symlink("elsewhere", at("..data")), 0);
}

static void test_other_names_ignored(void **state)
{
	struct calls c = {};
	struct watch *w = NULL;

	/* a plain file, so even `..data` changing is none of its business */
	write_file(at("cert.pem"), "v0");
	assert_int_equal(watch_new(event, at("cert.pem"), on_change, &c, &w), 0);
	schedule(5000, touch_others);
	run_for(250000);
	assert_int_equal(c.n, 0);
	watch_free(w);
}

/* The layout of a Kubernetes secret volume: tls.crt -> ..data/tls.crt, ..data -> ..v1. */
static void make_secret_volume(void)
{
	assert_int_equal(mkdir(at("..v1"), 0755), 0);
	write_file(at("..v1/tls.crt"), "old cert");
	assert_int_equal(symlink("..v1", at("..data")), 0);
	assert_int_equal(symlink("..data/tls.crt", at("tls.crt")), 0);
}

/* What AtomicWriter does: new timestamped dir, ..data_tmp -> it, rename over ..data. */
static void swap_secret_volume(void)
{
	assert_int_equal(mkdir(at("..v2"), 0755), 0);
	write_file(at("..v2/tls.crt"), "new cert");
	assert_int_equal(symlink("..v2", at("..data_tmp")), 0);
	assert_int_equal(rename(at("..data_tmp"), at("..data")), 0);
}

static void swap_to_empty_volume(void)
{
	assert_int_equal(mkdir(at("..v3"), 0755), 0);
	assert_int_equal(symlink("..v3", at("..data_tmp")), 0);
	assert_int_equal(rename(at("..data_tmp"), at("..data")), 0);
}

static void test_k8s_data_symlink_swap(void **state)
{
	struct calls c = {};
	struct watch *w = NULL;
	char buf[32] = {};
	FILE *f;

	make_secret_volume();
	assert_int_equal(watch_new(event, at("tls.crt"), on_change, &c, &w), 0);
	schedule(5000, swap_secret_volume);
	run_for(300000);
	assert_int_equal(c.n, 1);
	assert_true(c.exists[0]);
	f = fopen(at("tls.crt"), "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof buf, f));
	fclose(f);
	assert_string_equal(buf, "new cert");

	/* a version without the key: the link dangles, the file is gone */
	schedule(5000, swap_to_empty_volume);
	run_for(300000);
	assert_int_equal(c.n, 2);
	assert_false(c.exists[1]);
	watch_free(w);
}

static int lease_fd = -1;

static void append_lease(void)
{
	assert_int_equal(write(lease_fd, "1700000000 aa:bb 10.0.0.2 pod *\n", 32), 32);
}

static void test_in_place_write_without_close(void **state)
{
	struct calls c = { .free_in_callback = true };
	struct watch *w = NULL;

	/* dnsmasq rewrites its lease file through a descriptor it keeps open */
	write_file(at("dnsmasq.leases"), "");
	lease_fd = open(at("dnsmasq.leases"), O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(lease_fd >= 0);
	assert_int_equal(watch_new(event, at("dnsmasq.leases"), on_change, &c, &w), 0);
	schedule(5000, append_lease);
	run_for(250000);
	assert_int_equal(c.n, 1);
	assert_true(c.exists[0]);
	/* the callback freed the watch: later changes call nobody */
	schedule(1000, append_lease);
	run_for(200000);
	assert_int_equal(c.n, 1);
	close(lease_fd);
}

static void remove_directory(void)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s/sub'", tmpdir);
	assert_int_equal(system(cmd), 0);
}

static void test_directory_removed(void **state)
{
	struct calls c = {};
	struct watch *w = NULL;

	assert_int_equal(mkdir(at("sub"), 0755), 0);
	write_file(at("sub/lease"), "x");
	assert_int_equal(watch_new(event, at("sub/lease"), on_change, &c, &w), 0);
	schedule(5000, remove_directory);
	run_for(300000);
	assert_int_equal(c.n, 1);
	assert_false(c.exists[0]);
	watch_free(w);
}

static void test_bad_paths(void **state)
{
	struct calls c = {};
	struct watch *w = NULL;

	assert_int_equal(watch_new(event, at("missing/file"), on_change, &c, &w), -ENOENT);
	assert_int_equal(watch_new(event, "", on_change, &c, &w), -EINVAL);
	assert_int_equal(watch_new(event, at("dir/"), on_change, &c, &w), -EINVAL);
	assert_int_equal(watch_new(event, "/", on_change, &c, &w), -EINVAL);
	assert_int_equal(watch_new(event, at(".."), on_change, &c, &w), -EINVAL);
	assert_int_equal(watch_new(event, at("x"), NULL, &c, &w), -EINVAL);
	assert_null(w);
	watch_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_burst_gives_one_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debounce_configurable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_names_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_k8s_data_symlink_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_place_write_without_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
