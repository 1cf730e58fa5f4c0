/*
 * Topology segments (src/mockdriver/mock_topology.c): kept sorted and
 * unique, parsed from the flag's syntax, copied, bounded.
 */
#include "mock_topology.h"
#include "testing.h"

static void test_add_sorts_and_refuses(void)
{
	struct mock_topology t = {0};
	char key[16];

	CHECK(!t.present);
	CHECK(mock_topology_add(&t, "zone", 4, "a", 1) == NULL);
	CHECK(mock_topology_add(&t, "regionXX", 6, "r", 1) == NULL); /* by length */
	CHECK(mock_topology_add(&t, "zon", 3, "", 0) == NULL);
	CHECK(t.present);
	CHECK_INT(t.n, 3);
	CHECK_STR(t.key[0], "region");
	CHECK_STR(t.key[1], "zon");
	CHECK_STR(t.value[1], "");
	CHECK_STR(t.key[2], "zone");
	CHECK_STR(mock_topology_add(&t, "zone", 4, "b", 1), "duplicate key");
	CHECK_STR(t.value[2], "a");
	for (int i = 3; i < MOCK_TOPOLOGY_MAX; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		CHECK(mock_topology_add(&t, key, strlen(key), "v", 1) == NULL);
	}
	CHECK_STR(mock_topology_add(&t, "last", 4, "v", 1), "more than 64 segments");
	CHECK_INT(t.n, MOCK_TOPOLOGY_MAX);
	mock_topology_clear(&t);
	CHECK(!t.present);
	CHECK_INT(t.n, 0);
	mock_topology_clear(&t);
}

static void test_parse_and_copy(void)
{
	struct mock_topology t = {0}, copy = {0};
	char why[96];

	CHECK(mock_topology_parse("b=2,a=x=y", &t, why, sizeof(why)) == NULL);
	CHECK_INT(t.n, 2);
	CHECK_STR(t.key[0], "a");
	CHECK_STR(t.value[0], "x=y");
	/* Refused: t unchanged. */
	CHECK_STR(mock_topology_parse("a=1,b", &t, why, sizeof(why)), "want key=value, got \"b\"");
	CHECK_STR(mock_topology_parse("a=1,a=2", &t, why, sizeof(why)), "duplicate key a");
	CHECK_INT(t.n, 2);
	CHECK(mock_topology_copy(&copy, &t) == 0);
	CHECK(copy.present);
	CHECK_STR(copy.key[1], "b");
	CHECK(copy.key[1] != t.key[1]);
	/* "" is absent. */
	CHECK(mock_topology_parse("", &t, why, sizeof(why)) == NULL);
	CHECK(!t.present);
	CHECK(mock_topology_copy(&copy, &t) == 0); /* replaces what copy held */
	CHECK(!copy.present);
	CHECK_INT(copy.n, 0);
	/* Present and empty survives a copy. */
	t.present = true;
	CHECK(mock_topology_copy(&copy, &t) == 0);
	CHECK(copy.present);
	mock_topology_clear(&t);
	mock_topology_clear(&copy);
}

int main(void)
{
	test_add_sorts_and_refuses();
	test_parse_and_copy();
	return testing_result("mock_topology");
}
