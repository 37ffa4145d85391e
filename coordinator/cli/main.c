/* Entry point of the `relais` command: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>
#include "commands.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

static const command COMMANDS[] = {
    {"run", cmd_run, "generate text from a prompt (one machine)"},
    {"chat", cmd_chat, "interactive chat with the model's template"},
    {"inspect", cmd_inspect, "print a GGUF file's architecture, tokenizer, tensors and layout"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"synth", cmd_synth, "write a GGUF of random weights of any shape and type"},
    {"bench", cmd_bench, "measure prefill and decode speed and peak memory"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
    {"plan", cmd_plan, "show which layers each node of a cluster runs, and its memory"},
    {"status", cmd_status, "the nodes of a cluster file or of a running server: state, layers, memory, speed"},
    {"discover", cmd_discover, "list the nodes announcing themselves on the LAN, and whether they are trusted"},
    {"trust", cmd_trust, "add a node's key (NODE.pub, or a fingerprint from discover) to the trust folder"},
    {"keygen", cmd_keygen, "write a CURVE key pair (NAME.key, NAME.pub) for a coordinator or node"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: relais COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(out, "\n`relais COMMAND --help` describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name))
            return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "relais: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
