/* libFuzzer harness for the discovery beacon's reader (proto/beacon.c):
 * the input is one UDP payload as any host on the LAN may send it.
 * beacon_decode must refuse a bad one with a reason, never crash; one it
 * accepts must encode back to the same bytes up to the end of the name
 * (the reserved tail is ignored), so nothing is read that the layout does
 * not say. Seeds: corpus/beacon. */
#include <stdlib.h>
#include <string.h>
#include "beacon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    beacon_info b;
    char err[256];
    if (beacon_decode(data, size, &b, err, sizeof err)) {
        if (!err[0])
            abort(); /* a refusal always says why */
        return 0;
    }
    uint8_t again[BEACON_MAX_BYTES];
    size_t n = beacon_encode(&b, again);
    if (n == 0 || n > size || memcmp(again, data, n))
        abort();
    return 0;
}
