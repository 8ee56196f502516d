/* expect: clean */
/* A clean program whose main returns while three threads still allocate and
 * free and one maps and unmaps memory: the leak search at exit scans guarded
 * blocks that those threads free meanwhile (their pages then fault), and
 * mappings listed as roots that are gone when their turn comes (as larder's
 * purger thread gives back spans). No report, status 0. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static void *remap(void *arg) {
  (void)arg;
  for (;;) {
    char *maps[16];
    for (int i = 0; i < 16; i++) {
      maps[i] = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (maps[i] != MAP_FAILED) memset(maps[i], 1, 64 << 10);
    }
    for (int i = 0; i < 16; i++)
      if (maps[i] != MAP_FAILED) munmap(maps[i], 64 << 10);
  }
  return NULL;
}

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
  pthread_t th;
  pthread_create(&th, NULL, remap, NULL);
  pthread_detach(th);
  struct timespec pause = {0, 100 * 1000 * 1000};
  nanosleep(&pause, NULL);
  return 0;
}
