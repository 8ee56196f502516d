/* expect: signal */
/* SIGSEGV or SIGBUS sent to itself (raise, or kill with its pid): check mode's fault handler
 * must not swallow a signal that is no fault. The process dies of it, as without check mode,
 * and nothing is reported. argv[1]: segv, bus, kill-segv. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "corpus.h"
int main(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "segv";
  free(malloc(100)); /* a guarded block: the handler is installed either way */
  if (strcmp(how, "bus") == 0) raise(SIGBUS);
  else if (strcmp(how, "kill-segv") == 0) kill(getpid(), SIGSEGV);
  else raise(SIGSEGV);
  puts("survived the signal");
  return 0;
}
