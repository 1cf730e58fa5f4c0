/*
 * The CSI method table (src/csi_methods.c): lookups by name and path, and
 * the list of callable methods in error messages, which is written out in
 * its documented order and must name exactly the methods flagged callable.
 */
#include "csi_methods.h"
#include "testing.h"

#include <stdlib.h>

int main(void)
{
	/* Every method is found by its name and its path, and its path ends with its name. */
	for (size_t i = 0; i < csi_method_count(); i++) {
		const struct csi_method *m = csi_method_at(i);
		CHECK(csi_method_by_name(m->name) == m);
		CHECK(csi_method_by_path(m->path, strlen(m->path)) == m);
		size_t pl = strlen(m->path), nl = strlen(m->name);
		CHECK(pl > nl + 1 && strcmp(m->path + pl - nl, m->name) == 0 &&
		      m->path[pl - nl - 1] == '/');
		CHECK(!m->callable || (m->request && m->reply)); /* a callable one can be decoded */
	}
	CHECK(csi_method_at(csi_method_count()) == NULL);
	CHECK(csi_method_by_name("NoSuchMethod") == NULL);
	CHECK(csi_method_by_path("/csi.v1.Node/NodeGetInfoX", 25) == NULL);

	/* The list names each callable method once, and nothing else. */
	char list[512];
	snprintf(list, sizeof(list), "%s", csi_callable_methods());
	size_t named = 0;
	for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok;
	     tok = strtok_r(NULL, ", ", &save)) {
		const struct csi_method *m = csi_method_by_name(tok);
		if (!m || !m->callable)
			fprintf(stderr, "listed but not callable: %s\n", tok);
		CHECK(m != NULL && m->callable);
		named++;
	}
	size_t callable = 0;
	for (size_t i = 0; i < csi_method_count(); i++)
		callable += csi_method_at(i)->callable;
	CHECK_INT((int)named, (int)callable);
	CHECK_INT((int)callable, 5);
	return testing_result("csi_methods");
}
