/* libFuzzer harness for the cluster file reader (coordinator/plan/cluster_config.c):
 * any bytes as the YAML text, parsed as `relais serve --cluster` parses a
 * file. A bad file must give "NAME:LINE:COL: ..." and no crash or leak; an
 * accepted one must hold what the accessors promise (1..CLUSTER_MAX_NODES
 * nodes, each with an endpoint). Seeds: corpus/cluster_yaml. */
#include <stdlib.h>
#include <string.h>
#include "cluster_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512] = "";
    cluster_config *c = cluster_config_parse((const char *)data, size, "fuzz.yaml", "/nonexistent", err, sizeof err);
    if (!c) {
        if (strncmp(err, "fuzz.yaml", 9) != 0)
            abort(); /* every refusal names the file */
        return 0;
    }
    uint32_t n = cluster_config_n_nodes(c);
    if (n < 1 || n > CLUSTER_MAX_NODES)
        abort();
    (void)cluster_config_key(c);
    (void)cluster_config_listen(c);
    (void)cluster_config_advertise(c);
    (void)cluster_config_io_cpu(c);
    for (uint32_t i = 0; i < n; i++)
        if (!cluster_config_node(c, i))
            abort();
    cluster_config_destroy(&c);
    return 0;
}
