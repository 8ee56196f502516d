/* expect: double-free free_in_thread */
#include <pthread.h>
#include "corpus.h"
CULPRIT void *free_in_thread(void *p) {
  free(launder(p));
  NOTAIL();
  return NULL;
}
int main(int argc, char **argv) {
  char *p = malloc(size_arg(argc, argv));
  free(p);
  pthread_t t;
  pthread_create(&t, NULL, free_in_thread, p);
  pthread_join(t, NULL);
  return 0;
}
