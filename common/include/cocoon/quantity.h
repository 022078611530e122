/* Kubernetes resource quantities ("500m", "1.5Gi", "1e3"), parsed and printed like
 * k8s.io/apimachinery/pkg/api/resource.Quantity so that a string we write is byte-identical
 * to what the apiserver would write for the same value.
 *
 * Grammar (apimachinery's documented one):
 *   quantity ::= [+-] number suffix
 *   number   ::= digits | digits "." | digits "." digits | "." digits
 *   suffix   ::= "" n u m k M G T P E      (decimal SI)
 *              | Ki Mi Gi Ti Pi Ei         (binary SI)
 *              | (e|E) [+-] digits         (decimal exponent, fits an int32)
 *
 * Values are exact: a signed count of nano-units in 128 bits, never a double. Like the
 * apiserver, a non-zero value finer than 1n is rounded away from zero to the next nano.
 *
 * Where we differ from apimachinery, on purpose:
 *   - a number needs at least one digit: Go accepts ".", "-", "m" and "Gi" as zero;
 *   - a magnitude above 2^63-1 whole units is refused with -ERANGE: Go silently clamps
 *     binary values (and, before 2025, decimal ones) to 2^63-1, which is never what the
 *     writer meant;
 *   - quantity_format() always prints the computed canonical form. Go sometimes re-emits
 *     the input verbatim when it looks canonical ("1E3", "+1", "01", "1.500k"), so
 *     the apiserver can echo those back unchanged. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The suffix family of the input. Formatting keeps it: "1024Mi" prints as "1Gi", "1000M"
 * as "1G", "1000e0" as "1e3". */
enum quantity_format {
	QUANTITY_DECIMAL_SI,
	QUANTITY_BINARY_SI,
	QUANTITY_DECIMAL_EXPONENT,
};

struct quantity {
	__int128 nano; /* the value × 10^9; |value| <= 2^63-1 */
	enum quantity_format format;
};

/* Room for any canonical string and its NUL; the longest is 33 bytes:
 * "-9223372036854775806999999999e-9". */
#define QUANTITY_STRING_MAX 40

/* -EINVAL for anything outside the grammar (empty, spaces, "1.2.3", "5Gb", "1ki"),
 * -ERANGE when the magnitude exceeds 2^63-1, -ENOMEM. *ret is untouched on error. */
int quantity_parse(const char *s, struct quantity *ret);

/* Writes the canonical string (as Quantity.String() computes it) into buf. Returns its
 * length, or -ENOBUFS when n is too small (QUANTITY_STRING_MAX always suffices), or
 * -ERANGE for a hand-built struct whose value is out of range.
 *   zero             → "0"
 *   decimal SI       → mantissa without trailing zeros, exponent a multiple of 3 with its SI
 *                      suffix: "1.5" → "1500m", "1000m" → "1", "10000" → "10k"
 *   decimal exponent → the same with "e<exp>": "1.3E+6" → "1300e3", "1000e0" → "1e3"
 *   binary SI        → the largest power of 1024 that divides the value: "1.5Gi" → "1536Mi";
 *                      values below 1024 or not whole print as decimal SI:
 *                      "0.5Ki" → "512", "1.1Gi" → "1181116006400m" */
int quantity_format(const struct quantity *q, char *buf, size_t n);

/* -1, 0 or 1 by value; the format does not matter ("1Gi" equals "1073741824"). */
int quantity_cmp(const struct quantity *a, const struct quantity *b);

/* Quantity.Value(): the value rounded to an integer away from zero ("1500m" → 2,
 * "-1500m" → -2). Always fits. */
int64_t quantity_value(const struct quantity *q);

/* Quantity.MilliValue(): value × 1000 rounded away from zero ("1.5" → 1500, "1n" → 1).
 * -ERANGE when that does not fit an int64. */
int quantity_milli_value(const struct quantity *q, int64_t *ret);

/* True when s parses and is byte-identical to its canonical form ("1500m", "1Gi"; not
 * "1.5", "1024Mi", "+1"). Drift detection compares such strings byte for byte. */
bool quantity_is_canonical(const char *s);

/* 1 when both strings are quantities of the same value ("1Gi" and "1073741824", "1000m"
 * and "1"), 0 when they differ, or the parse error of the first one that is invalid. */
int quantity_equal_str(const char *a, const char *b);
