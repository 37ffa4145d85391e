# Where a decode token's time goes in a cluster on one host: reads the
# RELAIS_TRACE=1 lines of a coordinator and its nodes (any order, "relais:
# trace ..." as they log them; a leading "run=R " keeps the steps of several
# runs apart) and prints, in microseconds per generated token, the median,
# the minimum and the mean over the decode steps (one token each; the mean
# is what a run's tokens/s sees, slow outliers included) of:
#   - the token: from one Result read by the coordinator to the next;
#   - compute: every stage from compute start to send start, wall time, and
#     the CPU time of the computing thread (less than the wall time when the
#     stage waited for a core);
#   - the overhead, token - compute, split into
#       links: from a send call (coordinator or node) to the poll of the
#         next hop waking up: protobuf pack, ZeroMQ's I/O threads on both
#         sides, CURVE, loopback TCP and the thread wake-ups;
#       handling: a node from its poll waking to compute start (read,
#         unpack, checks, session, activations decoded) and the coordinator
#         from its poll waking to the Result read;
#       coordinator: from a Result read to the next send (the runner, the
#         embedding);
#   - and each hop and stage on its own.
# CLOCK_MONOTONIC is one clock for every process of a host, which is what
# lets the lines of different processes be subtracted; across machines the
# hop figures mean nothing.
#
# usage: awk -f bench/trace_hops.awk COORDINATOR.log NODE1.log ...
function field(key,   m) {
    if (!match($0, " " key "=[-0-9]+"))
        return ""
    return substr($0, RSTART + length(key) + 2, RLENGTH - length(key) - 2) + 0
}
function add(name, v) { n[name]++; val[name, n[name]] = v }
function median(name,   i, j, t, a, k) {
    k = n[name]
    for (i = 1; i <= k; i++)
        a[i] = val[name, i]
    for (i = 2; i <= k; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
function least(name,   i, m) {
    m = val[name, 1]
    for (i = 2; i <= n[name]; i++)
        if (val[name, i] < m)
            m = val[name, i]
    return m
}
function mean(name,   i, t) {
    for (i = 1; i <= n[name]; i++)
        t += val[name, i]
    return t / n[name]
}
function show(label, name) {
    if (n[name])
        printf "| %s | %.0f | %.0f | %.0f |\n", label, median(name), least(name), mean(name)
}

{ run = match($0, /^run=[^ ]+ /) ? substr($0, 5, RLENGTH - 5) : "" }
/relais: trace send / { s = run SUBSEP field("step"); if (field("tokens") == 1) decode[s] = 1; sent_c[s] = field("send") }
/relais: trace result / { s = run SUBSEP field("step"); wake_c[s] = field("wake"); read_c[s] = field("read") }
/relais: trace forward / {
    s = run SUBSEP field("step")
    l0 = field("layers"); split(substr($0, index($0, "layers=") + 7), r, " "); stage[l0] = r[1]
    wake[s, l0] = field("wake"); start[s, l0] = field("compute"); send[s, l0] = field("send"); cpu[s, l0] = field("cpu")
}
END {
    k = 0
    for (l in stage)
        first[++k] = l + 0
    for (i = 2; i <= k; i++)
        for (j = i; j > 1 && first[j - 1] > first[j]; j--) { t = first[j]; first[j] = first[j - 1]; first[j - 1] = t }
    for (s in decode) {
        split(s, id, SUBSEP); before = id[1] SUBSEP (id[2] - 1)
        if (!(s in wake_c) || !(before in read_c))
            continue
        ok = 1
        for (i = 1; i <= k; i++)
            ok = ok && ((s, first[i]) in send) && send[s, first[i]] > 0
        if (!ok)
            continue
        at = sent_c[s]; links = handling = wall = busy = 0
        for (i = 1; i <= k; i++) {
            l = first[i]
            add("link" i, wake[s, l] - at); add("handling" i, start[s, l] - wake[s, l])
            add("compute" i, send[s, l] - start[s, l]); add("cpu" i, cpu[s, l])
            links += wake[s, l] - at; handling += start[s, l] - wake[s, l]
            wall += send[s, l] - start[s, l]; busy += cpu[s, l]; at = send[s, l]
        }
        add("link_last", wake_c[s] - at); links += wake_c[s] - at; handling += read_c[s] - wake_c[s]
        add("token", read_c[s] - read_c[before]); add("wall", wall); add("busy", busy)
        add("overhead", read_c[s] - read_c[before] - wall); add("links", links); add("handling", handling)
        add("coordinator", sent_c[s] - read_c[before]); add("read_c", read_c[s] - wake_c[s])
    }
    if (!n["token"]) {
        print "no complete decode step in the trace (RELAIS_TRACE=1 on the coordinator and every node?)"
        exit 1
    }
    printf "%d decode tokens through %d stages; microseconds per token\n\n", n["token"], k
    print "| part | median | min | mean |"
    print "|---|---|---|---|"
    show("token", "token"); show("compute, all stages (wall)", "wall"); show("compute, all stages (CPU)", "busy")
    show("overhead = token - compute", "overhead"); show("- links, all " k + 1, "links")
    show("- handling, all", "handling"); show("- coordinator, Result to next send", "coordinator")
    for (i = 1; i <= k; i++) {
        show("link to layers " stage[first[i]], "link" i); show("- handling", "handling" i)
        show("- compute (wall)", "compute" i); show("- compute (CPU)", "cpu" i)
    }
    show("link to the coordinator", "link_last"); show("- handling", "read_c")
}
