/* expect: clean */
/* A clean program whose main returns while three threads still allocate and
 * free: the leak search at exit scans guarded blocks that those threads free
 * meanwhile (their pages then fault). No report, status 0. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *churn(void *arg) {
  unsigned s = (unsigned)(size_t)arg;
  char *slots[64] = {0};
  for (;;) {
    s = s * 1103515245u + 12345u;
    unsigned i = (s >> 8) % 64;
    free(slots[i]);
    size_t size = 1 + (s >> 16) % 3000;
    slots[i] = malloc(size);
    if (slots[i]) memset(slots[i], 1, size);
  }
  return NULL;
}

int main(void) {
  for (size_t t = 1; t <= 3; t++) {
    pthread_t th;
    pthread_create(&th, NULL, churn, (void *)t);
    pthread_detach(th);
  }
  struct timespec pause = {0, 100 * 1000 * 1000};
  nanosleep(&pause, NULL);
  return 0;
}
