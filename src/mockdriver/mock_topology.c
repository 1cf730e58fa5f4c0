/* Topology segments: building, parsing, copying (mock_topology.h). */
#include "mock_topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char duplicate_key[] = "duplicate key";

/* strcmp order for byte strings that hold no NUL. */
static int compare(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

const char *mock_topology_add(struct mock_topology *t, const char *key, size_t klen,
                              const char *value, size_t vlen)
{
	size_t at = 0;
	char *k, *v;

	while (at < t->n && compare(key, klen, t->key[at]) > 0)
		at++;
	if (at < t->n && compare(key, klen, t->key[at]) == 0)
		return duplicate_key;
	if (t->n == MOCK_TOPOLOGY_MAX)
		return "more than 64 segments";
	k = strndup(key, klen);
	v = strndup(value, vlen);
	if (!k || !v) {
		free(k);
		free(v);
		return "out of memory";
	}
	memmove(&t->key[at + 1], &t->key[at], (t->n - at) * sizeof(t->key[0]));
	memmove(&t->value[at + 1], &t->value[at], (t->n - at) * sizeof(t->value[0]));
	t->key[at] = k;
	t->value[at] = v;
	t->n++;
	t->present = true;
	return NULL;
}

const char *mock_topology_parse(const char *text, struct mock_topology *t, char *why, size_t whylen)
{
	struct mock_topology parsed = {0};
	const char *p = text, *end = NULL, *reason = NULL;

	for (; *text != '\0'; p = end + 1) {
		const char *stop, *eq;

		end = strchr(p, ',');
		stop = end ? end : p + strlen(p);
		eq = memchr(p, '=', (size_t)(stop - p));
		if (!eq || eq == p) {
			snprintf(why, whylen, "want key=value, got \"%.*s\"", (int)(stop - p), p);
			reason = why;
			goto fail;
		}
		reason = mock_topology_add(&parsed, p, (size_t)(eq - p), eq + 1,
		                           (size_t)(stop - eq - 1));
		if (reason) {
			if (reason == duplicate_key) { /* name it: the user must find it */
				snprintf(why, whylen, "duplicate key %.*s", (int)(eq - p), p);
				reason = why;
			}
			goto fail;
		}
		if (!end)
			break;
	}
	mock_topology_clear(t);
	*t = parsed;
	return NULL;
fail:
	mock_topology_clear(&parsed);
	return reason;
}

int mock_topology_copy(struct mock_topology *dst, const struct mock_topology *src)
{
	mock_topology_clear(dst);
	for (size_t i = 0; i < src->n; i++) {
		if (mock_topology_add(dst, src->key[i], strlen(src->key[i]), src->value[i],
		                      strlen(src->value[i]))) {
			mock_topology_clear(dst);
			return -1;
		}
	}
	dst->present = src->present;
	return 0;
}

void mock_topology_clear(struct mock_topology *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->key[i]);
		free(t->value[i]);
	}
	memset(t, 0, sizeof(*t));
}
