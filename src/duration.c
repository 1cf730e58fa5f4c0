/*
 * Go time.Duration text. Parsing accepts exactly what Go's time.ParseDuration
 * accepts (same units, same overflow limits, same float rounding of
 * fractions); formatting gives what Duration.String() prints.
 */
#include "duration.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define NS_PER_US 1000ULL
#define NS_PER_MS 1000000ULL
#define NS_PER_S  1000000000ULL
#define NS_PER_M  (60 * NS_PER_S)
#define NS_PER_H  (60 * NS_PER_M)

/* 2^63: the magnitude of INT64_MIN, the largest one a negative value may have. */
#define MAG_LIMIT (1ULL << 63)

struct unit {
	const char *name;
	uint64_t ns;
};

/* µ is U+00B5 (micro sign), μ is U+03BC (Greek mu); Go accepts both. */
static const struct unit units[] = {
        {"ns", 1},         {"us", NS_PER_US}, {"\xc2\xb5s", NS_PER_US}, {"\xce\xbcs", NS_PER_US},
        {"ms", NS_PER_MS}, {"s", NS_PER_S},   {"m", NS_PER_M},          {"h", NS_PER_H},
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Looks up the unit spelled by text[0..len); 0 when unknown. */
static uint64_t unit_ns(const char *text, size_t len)
{
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strlen(units[i].name) == len && memcmp(units[i].name, text, len) == 0)
			return units[i].ns;
	}
	return 0;
}

/*
 * Parses one "<number><unit>" element at *pp into a magnitude, advancing *pp.
 * The integer part must not exceed 2^63; fraction digits beyond what fits are
 * ignored (they cannot change the result), as Go does.
 */
static int parse_element(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t whole = 0, frac = 0;
	double scale = 1;
	bool have_whole = false, have_frac = false, frac_full = false;

	if (!is_digit(*p) && *p != '.')
		return -1;
	for (; is_digit(*p); p++) {
		if (whole > MAG_LIMIT / 10)
			return -1;
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > MAG_LIMIT)
			return -1;
		have_whole = true;
	}
	if (*p == '.') {
		for (p++; is_digit(*p); p++) {
			have_frac = true;
			if (frac_full)
				continue;
			if (frac > (MAG_LIMIT - 1) / 10 ||
			    frac * 10 + (uint64_t)(*p - '0') > MAG_LIMIT) {
				frac_full = true;
				continue;
			}
			frac = frac * 10 + (uint64_t)(*p - '0');
			scale *= 10;
		}
	}
	if (!have_whole && !have_frac)
		return -1; /* "." or ".s" */

	const char *unit_start = p;
	while (*p != '\0' && *p != '.' && !is_digit(*p))
		p++;
	uint64_t unit = unit_ns(unit_start, (size_t)(p - unit_start));
	if (unit == 0)
		return -1; /* missing or unknown unit */

	if (whole > MAG_LIMIT / unit)
		return -1;
	whole *= unit;
	if (frac > 0) {
		/* Same float arithmetic as Go, so "1.1s" rounds identically. */
		whole += (uint64_t)((double)frac * ((double)unit / scale));
		if (whole > MAG_LIMIT)
			return -1;
	}
	*pp = p;
	*out = whole;
	return 0;
}

int duration_parse(const char *text, int64_t *out_ns)
{
	if (text == NULL)
		return -1;
	const char *p = text;
	bool negative = false;
	if (*p == '-' || *p == '+') {
		negative = *p == '-';
		p++;
	}
	if (strcmp(p, "0") == 0) {
		*out_ns = 0;
		return 0;
	}
	if (*p == '\0')
		return -1;

	uint64_t total = 0;
	while (*p != '\0') {
		uint64_t element;
		if (parse_element(&p, &element) != 0)
			return -1;
		total += element;
		if (total > MAG_LIMIT)
			return -1;
	}
	if (negative) {
		*out_ns = total == MAG_LIMIT ? INT64_MIN : -(int64_t)total;
	} else {
		if (total > (uint64_t)INT64_MAX)
			return -1;
		*out_ns = (int64_t)total;
	}
	return 0;
}

/*
 * Appends ".ddd" for the fraction frac/div with trailing zeros dropped
 * (nothing when frac is 0). div is a power of ten.
 */
static int format_fraction(char *buf, size_t len, uint64_t frac, uint64_t div)
{
	if (frac == 0) {
		if (len > 0)
			buf[0] = '\0';
		return 0;
	}
	int digits = 0;
	for (uint64_t d = div; d > 1; d /= 10)
		digits++;
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	return snprintf(buf, len, ".%0*llu", digits, (unsigned long long)frac);
}

void duration_format(int64_t ns, char *buf, unsigned len)
{
	if (buf == NULL || len == 0)
		return;
	if (ns == 0) {
		snprintf(buf, len, "0s");
		return;
	}
	/* Magnitude without overflow for INT64_MIN. */
	uint64_t mag = ns < 0 ? (uint64_t)(-(ns + 1)) + 1 : (uint64_t)ns;
	const char *sign = ns < 0 ? "-" : "";
	char frac[16];

	if (mag < NS_PER_US) {
		snprintf(buf, len, "%s%lluns", sign, (unsigned long long)mag);
	} else if (mag < NS_PER_MS) {
		format_fraction(frac, sizeof(frac), mag % NS_PER_US, NS_PER_US);
		snprintf(buf, len, "%s%llu%s\xc2\xb5s", sign, (unsigned long long)(mag / NS_PER_US),
		         frac);
	} else if (mag < NS_PER_S) {
		format_fraction(frac, sizeof(frac), mag % NS_PER_MS, NS_PER_MS);
		snprintf(buf, len, "%s%llu%sms", sign, (unsigned long long)(mag / NS_PER_MS), frac);
	} else {
		unsigned long long hours = mag / NS_PER_H;
		unsigned long long minutes = mag / NS_PER_M % 60;
		unsigned long long seconds = mag / NS_PER_S % 60;
		format_fraction(frac, sizeof(frac), mag % NS_PER_S, NS_PER_S);
		if (hours > 0)
			snprintf(buf, len, "%s%lluh%llum%llu%ss", sign, hours, minutes, seconds,
			         frac);
		else if (minutes > 0)
			snprintf(buf, len, "%s%llum%llu%ss", sign, minutes, seconds, frac);
		else
			snprintf(buf, len, "%s%llu%ss", sign, seconds, frac);
	}
}
