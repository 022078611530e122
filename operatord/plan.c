/* Plans: the ordered list of writes one reconcile pass decided, and how to requeue it
 * (operatord.h explains why passes are pure). This file owns the action list, the outcome
 * rules and the registry facts table; it performs no I/O. The JSON shapes it builds are
 * the ones the executor sends as they are: annotation changes are RFC 7386 merge patches
 * ({"metadata":{"annotations":{key: value}}}, null removes a key), metric labels an object
 * of label name to value.
 *
 * Outcomes combine by urgency, so a helper deep in a pass cannot undo a decision made
 * earlier: an error outranks everything (the pass stops and is retried with backoff), a
 * pending probe outranks any requeue, an immediate requeue outranks a delayed one, and of
 * two delayed requeues the sooner wins. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cocoon/strv.h"
#include "operatord.h"

static void action_done(struct action *a)
{
	free(a->name);
	free(a->tag);
	json_decref(a->body);
	free(a->message);
}

void plan_done(struct plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_actions; i++)
		action_done(&p->actions[i]);
	free(p->actions);
	free(p->error);
	free(p->note);
	strv_free(p->probes);
	*p = (struct plan){ 0 };
}

/* Appends a zeroed action owning body (released on failure too). name may be NULL. */
static int plan_push(struct plan *p, enum action_kind kind, unsigned flags, const char *name,
		     json_t *take_body, struct action **ret)
{
	_cleanup_(freep) char *n = NULL;
	struct action *v;

	if (name && !(n = strdup(name))) {
		json_decref(take_body);
		return -ENOMEM;
	}
	v = reallocarray(p->actions, p->n_actions + 1, sizeof(*v));
	if (!v) {
		json_decref(take_body);
		return -ENOMEM;
	}
	p->actions = v;
	v = &p->actions[p->n_actions++];
	*v =
	    (struct action){ .kind = kind, .flags = flags, .name = TAKE_PTR(n), .body = take_body };
	if (ret)
		*ret = v;
	return 0;
}

int plan_pod_create(struct plan *p, json_t *take_pod, unsigned flags)
{
	/* The name rides along so the executor can log and report which pod it was. */
	const char *name =
	    json_string_value(json_object_get(json_object_get(take_pod, "metadata"), "name"));

	if (!take_pod)
		return -ENOMEM;
	return plan_push(p, ACT_POD_CREATE, flags, name, take_pod, NULL);
}

int plan_pod_delete(struct plan *p, const char *name, unsigned flags)
{
	return plan_push(p, ACT_POD_DELETE, flags, name, NULL, NULL);
}

int plan_pod_patch(struct plan *p, const char *name, json_t *take_patch, unsigned flags)
{
	if (!take_patch)
		return -ENOMEM;
	return plan_push(p, ACT_POD_PATCH, flags, name, take_patch, NULL);
}

/* {"metadata":{"annotations":{key: value | null}}} */
static json_t *annotation_patch(const char *key, const char *value)
{
	return json_pack("{s:{s:{s:s?}}}", "metadata", "annotations", key, value);
}

int plan_pod_annotate(struct plan *p, const char *name, const char *key, const char *value,
		      unsigned flags)
{
	return plan_pod_patch(p, name, annotation_patch(key, value), flags);
}

int plan_obj_patch(struct plan *p, json_t *take_patch)
{
	if (!take_patch)
		return -ENOMEM;
	return plan_push(p, ACT_OBJ_PATCH, 0, NULL, take_patch, NULL);
}

int plan_obj_annotate(struct plan *p, const char *key, const char *value)
{
	return plan_obj_patch(p, annotation_patch(key, value));
}

int plan_obj_update(struct plan *p, json_t *take_obj)
{
	if (!take_obj)
		return -ENOMEM;
	return plan_push(p, ACT_OBJ_UPDATE, 0, NULL, take_obj, NULL);
}

int plan_status_patch(struct plan *p, json_t *take_patch)
{
	if (!take_patch)
		return -ENOMEM;
	return plan_push(p, ACT_STATUS_PATCH, 0, NULL, take_patch, NULL);
}

int plan_event(struct plan *p, const char *type, const char *reason, const char *fmt, ...)
{
	_cleanup_(freep) char *message = NULL;
	struct action *a;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&message, fmt, ap);
	va_end(ap);
	if (r < 0) {
		message = NULL;
		return -ENOMEM;
	}
	r = plan_push(p, ACT_EVENT, 0, NULL, NULL, &a);
	if (r < 0)
		return r;
	a->event_type = type;
	a->reason = reason;
	a->message = TAKE_PTR(message);
	return 0;
}

int plan_tag_delete(struct plan *p, const char *vm_name, const char *tag, unsigned flags)
{
	_cleanup_(freep) char *t = strdup(tag);
	struct action *a;
	int r;

	if (!t)
		return -ENOMEM;
	r = plan_push(p, ACT_TAG_DELETE, flags, vm_name, NULL, &a);
	if (r < 0)
		return r;
	a->tag = TAKE_PTR(t);
	return 0;
}

/* The NULL-terminated name, value pairs as a JSON object. */
static json_t *labels_object(va_list ap)
{
	json_t *labels = json_object();
	const char *name;

	if (!labels)
		return NULL;
	while ((name = va_arg(ap, const char *))) {
		const char *value = va_arg(ap, const char *);

		if (json_object_set_new(labels, name, json_string(value ? value : "")) < 0) {
			json_decref(labels);
			return NULL;
		}
	}
	return labels;
}

static int plan_metric(struct plan *p, enum action_kind kind, const char *metric, double value,
		       json_t *take_labels)
{
	struct action *a;
	int r;

	if (!take_labels)
		return -ENOMEM;
	r = plan_push(p, kind, 0, NULL, take_labels, &a);
	if (r < 0)
		return r;
	a->metric = metric;
	a->value = value;
	return 0;
}

int plan_count(struct plan *p, const char *metric, double value, ...)
{
	json_t *labels;
	va_list ap;

	va_start(ap, value);
	labels = labels_object(ap);
	va_end(ap);
	return plan_metric(p, ACT_COUNT, metric, value, labels);
}

int plan_observe(struct plan *p, const char *metric, double seconds, ...)
{
	json_t *labels;
	va_list ap;

	va_start(ap, seconds);
	labels = labels_object(ap);
	va_end(ap);
	return plan_metric(p, ACT_OBSERVE, metric, seconds, labels);
}

int plan_requeue_after(struct plan *p, uint64_t usec)
{
	if (p->outcome != PLAN_DONE && p->outcome != PLAN_REQUEUE_AFTER)
		return 0;
	if (usec == 0) {
		p->outcome = PLAN_REQUEUE;
		p->requeue_after_usec = 0;
	} else if (p->outcome == PLAN_DONE || usec < p->requeue_after_usec) {
		p->outcome = PLAN_REQUEUE_AFTER;
		p->requeue_after_usec = usec;
	}
	return 0;
}

int plan_error(struct plan *p, const char *fmt, ...)
{
	char *error;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&error, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	free(p->error);
	p->error = error;
	p->outcome = PLAN_ERROR;
	return 0;
}

int plan_note(struct plan *p, const char *fmt, ...)
{
	char *note;
	va_list ap;
	int r;

	if (p->note)
		return 0; /* the first reason is the one to show */
	va_start(ap, fmt);
	r = vasprintf(&note, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	p->note = note;
	return 0;
}

int plan_need_probe(struct plan *p, const char *vm_name)
{
	int r;

	if (!strv_contains(p->probes, vm_name)) {
		r = strv_push(&p->probes, vm_name);
		if (r < 0)
			return r;
		p->n_probes++;
	}
	if (p->outcome != PLAN_ERROR)
		p->outcome = PLAN_NEED_FACTS;
	return 0;
}

/* ---- facts ---- */

static ssize_t facts_find(const struct facts *f, const char *vm_name)
{
	for (size_t i = 0; i < f->n; i++)
		if (streq(f->names[i], vm_name))
			return (ssize_t)i;
	return -1;
}

enum fact facts_get(const struct facts *f, const char *vm_name, const char **ret_error)
{
	ssize_t i = f ? facts_find(f, vm_name) : -1;

	if (i < 0)
		return FACT_UNKNOWN;
	if (ret_error && f->values[i] == FACT_ERROR)
		*ret_error = f->errors[i] ? f->errors[i] : "registry error";
	return f->values[i];
}

/* Grows the three parallel arrays by one slot (left NULL / FACT_UNKNOWN). */
static int facts_grow(struct facts *f)
{
	char **names, **errors;
	enum fact *values;

	names = reallocarray(f->names, f->n + 1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	f->names = names;
	values = reallocarray(f->values, f->n + 1, sizeof(*values));
	if (!values)
		return -ENOMEM;
	f->values = values;
	errors = reallocarray(f->errors, f->n + 1, sizeof(*errors));
	if (!errors)
		return -ENOMEM;
	f->errors = errors;
	f->names[f->n] = NULL;
	f->values[f->n] = FACT_UNKNOWN;
	f->errors[f->n] = NULL;
	return 0;
}

int facts_set(struct facts *f, const char *vm_name, enum fact v, const char *error)
{
	_cleanup_(freep) char *e = NULL, *name = NULL;
	ssize_t i = facts_find(f, vm_name);
	int r;

	if (v == FACT_ERROR && error && !(e = strdup(error)))
		return -ENOMEM;
	if (i < 0) {
		if (!(name = strdup(vm_name)))
			return -ENOMEM;
		r = facts_grow(f);
		if (r < 0)
			return r;
		i = (ssize_t)f->n++;
		f->names[i] = TAKE_PTR(name);
	}
	free(f->errors[i]);
	f->errors[i] = TAKE_PTR(e);
	f->values[i] = v;
	return 0;
}

void facts_done(struct facts *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->names[i]);
		free(f->errors[i]);
	}
	free(f->names);
	free(f->values);
	free(f->errors);
	*f = (struct facts){ 0 };
}
