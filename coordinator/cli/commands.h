/* The subcommands of the `relais` program. Each takes the arguments after
 * its name (argv[0] is the subcommand) and returns the process exit code. */
#ifndef RELAIS_COMMANDS_H
#define RELAIS_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_discover(int argc, char **argv);
int cmd_trust(int argc, char **argv);

#endif
