/* The discovery beacon's payload (proto/beacon.h) without a network: what
 * is encoded decodes to the same fields, every byte of the layout is where
 * beacon.h says, and each kind of malformed payload (short, cut, another
 * magic or format, port 0, a bad or unterminated name, a zero key) is
 * refused with its reason while trailing reserved bytes are accepted. The
 * beacons themselves cross a network in tests/net/netns_discover.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include "beacon.h"

static beacon_info sample(void) {
    beacon_info b = {.protocol = 2, .port = 7700, .free_ram = 0x0102030405060708ull};
    for (int i = 0; i < CURVE_KEY_BYTES; i++)
        b.key[i] = (uint8_t)(i + 1);
    strcpy(b.name, "pi-5.local_1");
    return b;
}

static void test_round_trip_and_layout(void **state) {
    (void)state;
    beacon_info b = sample(), back;
    uint8_t buf[BEACON_MAX_BYTES];
    size_t n = beacon_encode(&b, buf);
    assert_int_equal(n, 49 + strlen(b.name));
    assert_memory_equal(buf, "RLB\x01", 4);
    assert_int_equal(buf[4] << 8 | buf[5], 2);
    assert_int_equal(buf[6] << 8 | buf[7], 7700);
    assert_int_equal(buf[40], 0x01);
    assert_int_equal(buf[47], 0x08);
    assert_int_equal(buf[48], strlen(b.name));
    char err[160];
    assert_int_equal(beacon_decode(buf, n, &back, err, sizeof err), 0);
    assert_int_equal(back.protocol, 2);
    assert_int_equal(back.port, 7700);
    assert_memory_equal(back.key, b.key, CURVE_KEY_BYTES);
    assert_true(back.free_ram == b.free_ram);
    assert_string_equal(back.name, b.name);
    /* bytes a later writer appends are ignored */
    uint8_t longer[BEACON_MAX_BYTES + 8];
    memcpy(longer, buf, n);
    memset(longer + n, 0xee, 8);
    assert_int_equal(beacon_decode(longer, n + 8, &back, err, sizeof err), 0);
    assert_string_equal(back.name, b.name);
}

static void test_encode_refuses(void **state) {
    (void)state;
    uint8_t buf[BEACON_MAX_BYTES];
    beacon_info b = sample();
    b.port = 0;
    assert_int_equal(beacon_encode(&b, buf), 0);
    b = sample();
    strcpy(b.name, "two words");
    assert_int_equal(beacon_encode(&b, buf), 0);
    b.name[0] = '\0';
    assert_int_equal(beacon_encode(&b, buf), 0);
    memset(b.name, 'a', BEACON_NAME_MAX);
    b.name[BEACON_NAME_MAX] = '\0';
    assert_int_equal(beacon_encode(&b, buf), 49 + BEACON_NAME_MAX);
}

/* Decoding buf after edit() fails with a reason containing `why`. */
static void refused(const uint8_t *good, size_t n, size_t at, uint8_t value, size_t len, const char *why) {
    uint8_t buf[BEACON_MAX_BYTES];
    memcpy(buf, good, n);
    if (at < n)
        buf[at] = value;
    beacon_info out;
    char err[160] = "";
    assert_int_equal(beacon_decode(buf, len, &out, err, sizeof err), -1);
    if (!strstr(err, why))
        fail_msg("expected '%s' in '%s'", why, err);
}

static void test_decode_refuses(void **state) {
    (void)state;
    beacon_info b = sample();
    uint8_t good[BEACON_MAX_BYTES];
    size_t n = beacon_encode(&b, good);
    refused(good, n, n, 0, 2, "not a relais beacon");
    refused(good, n, 0, 'X', n, "not a relais beacon");
    refused(good, n, 3, 2, n, "format 2");
    refused(good, n, n, 0, 49, "cut short");
    refused(good, n, n, 0, n - 1, "cut short");
    uint8_t zero_port[BEACON_MAX_BYTES];
    memcpy(zero_port, good, n);
    zero_port[6] = zero_port[7] = 0;
    beacon_info out;
    char err[160];
    assert_int_equal(beacon_decode(zero_port, n, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "port 0"));
    refused(good, n, 49, ' ', n, "name");
    refused(good, n, 50, '\0', n, "name");
    refused(good, n, 48, 0, n, "name");
    refused(good, n, 48, BEACON_NAME_MAX + 1, BEACON_MAX_BYTES, "cut short");
    uint8_t zero_key[BEACON_MAX_BYTES];
    memcpy(zero_key, good, n);
    memset(zero_key + 8, 0, CURVE_KEY_BYTES);
    assert_int_equal(beacon_decode(zero_key, n, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "all-zero key"));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip_and_layout),
                                       cmocka_unit_test(test_encode_refuses), cmocka_unit_test(test_decode_refuses)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
