/*
 * UTF-8 decoding and cutting (src/utf8.c): what is valid (overlongs,
 * surrogates and code points past U+10FFFF are not), and cuts that never
 * split a character.
 */
#include "utf8.h"
#include "testing.h"

static int decode(const char *s, size_t n)
{
	uint32_t cp = 0;
	return utf8_decode((const unsigned char *)s, n, &cp);
}

static void test_decode(void)
{
	uint32_t cp = 0;
	CHECK_INT(utf8_decode((const unsigned char *)"a", 1, &cp), 1);
	CHECK_INT(cp, 'a');
	CHECK_INT(utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
	CHECK_INT(cp, 0xe9);
	CHECK_INT(utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
	CHECK_INT(cp, 0x20ac);
	CHECK_INT(utf8_decode((const unsigned char *)"\xf4\x8f\xbf\xbf", 4, &cp), 4);
	CHECK_INT(cp, 0x10ffff);
	CHECK_INT(decode("\xc3\xa9", 1), 0);         /* truncated */
	CHECK_INT(decode("\xc0\xaf", 2), 0);         /* overlong '/' */
	CHECK_INT(decode("\xe0\x80\xaf", 3), 0);     /* overlong */
	CHECK_INT(decode("\xed\xa0\x80", 3), 0);     /* surrogate */
	CHECK_INT(decode("\xf4\x90\x80\x80", 4), 0); /* past U+10FFFF */
	CHECK_INT(decode("\xff", 1), 0);
	CHECK_INT(decode("\x80", 1), 0); /* a lone continuation byte */
	CHECK_INT(decode("", 0), 0);
}

static void test_cut(void)
{
	const char *s = "ab\xc3\xa9\xe2\x82\xac"; /* a b é € : 7 bytes */
	CHECK_INT(utf8_cut(s, 7, 100), 7);
	CHECK_INT(utf8_cut(s, 7, 7), 7);
	CHECK_INT(utf8_cut(s, 7, 6), 4); /* not inside € */
	CHECK_INT(utf8_cut(s, 7, 5), 4);
	CHECK_INT(utf8_cut(s, 7, 3), 2); /* not inside é */
	CHECK_INT(utf8_cut(s, 7, 0), 0);
	/* Invalid bytes count as one character each. */
	CHECK_INT(utf8_cut("\xff\xff\xff", 3, 2), 2);

	char out[6];
	CHECK_INT(utf8_copy(out, sizeof(out), s, 7), 4);
	CHECK_STR(out, "ab\xc3\xa9");
	CHECK_INT(utf8_copy(out, sizeof(out), "abc", 3), 3);
	CHECK_STR(out, "abc");
}

int main(void)
{
	test_decode();
	test_cut();
	return testing_result("utf8");
}
