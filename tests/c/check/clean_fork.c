/* expect: clean */
/* A clean program: threads churning realloc chains and memalign while the
 * main thread forks; the children allocate and exit. No report, status 0. */
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "corpus.h"
static void *churn(void *arg) {
  (void)arg;
  for (int i = 0; i < 2000; i++) {
    char *p = NULL;
    for (size_t n = 1; n < 70000; n *= 3) {
      p = realloc(p, n);
      p[n - 1] = 1;
    }
    free(p);
    void *a = aligned_alloc(256, 100);
    free(a);
  }
  return NULL;
}
int main(int argc, char **argv) {
  (void)size_arg(argc, argv);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, churn, NULL);
  for (int i = 0; i < 20; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      free(malloc(100));
      _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  }
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  return 0;
}
