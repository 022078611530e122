/* Cloud images (net-epoch-runtime.md §2.6 "Cloud image"): the disk layers of an os-image
 * manifest, stably sorted by title (split parts name themselves so they sort lexically,
 * e.g. x.qcow2.001.qcow2.part), written back to back into `cocoon image import <local>`
 * (which sniffs qcow2 from its magic) or an fd. Other layers (notes, checksums) are skipped.
 * The bytes are verified per blob by stream.c like every pull. */
#include <string.h>

#include "epoch-internal.h"

struct ordered {
	const struct epoch_descriptor *d;
	size_t index;
};

/* By title, then manifest order: qsort is not stable, the index makes it so. */
static int ordered_cmp(const void *a, const void *b)
{
	const struct ordered *x = a, *y = b;
	int c = strcmp(x->d->title ?: "", y->d->title ?: "");

	return c ? c : (x->index > y->index) - (x->index < y->index);
}

int cloudimg_pull_plan(const struct epoch_manifest *m, const struct epoch_pull_options *o,
		       const char *local_name, struct pull_plan *plan, char **ret_error)
{
	_cleanup_(freep) struct ordered *disks = calloc(m->n_layers ?: 1, sizeof *disks);
	size_t n = 0;
	int k;

	if (!disks)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_layers; i++)
		if (epoch_media_type_is_disk(m->layers[i].media_type))
			disks[n++] = (struct ordered){ &m->layers[i], i };
	if (n == 0)
		return fail_msg(ret_error, "the cloud image has no disk layer");
	qsort(disks, n, sizeof *disks, ordered_cmp);
	for (size_t i = 0; i < n; i++) {
		struct pull_item *it;

		k = pull_plan_add(plan, &it);
		if (k < 0)
			return k;
		it->blob = disks[i].d;
		plan->total += disks[i].d->size;
	}
	plan->verb = "image import";
	if (o->out_fd >= 0)
		return 0;
	return cocoon_argv(o->cocoon, &plan->argv, "image", "import", local_name, NULL);
}
