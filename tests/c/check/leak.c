/* expect: leak leak_list */
/* A list of three nodes whose head pointer is dropped: the head is
 * definitely lost, the two nodes behind it indirectly lost; a block a global
 * still points to is reachable and not reported. With a second argument the
 * program ends by calling exit() from a function whose local holds one more
 * block: that frame is live, so the block is still reachable (the exit
 * machinery's frames below it are not roots). Leaks do not change the exit
 * status: run.sh checks the report instead. */
#include <stdio.h>
#include "corpus.h"
struct node {
  struct node *next;
  char payload[56];
};
void *still_reachable;
CULPRIT struct node *leak_list(size_t n) {
  struct node *head = NULL;
  for (int i = 0; i < 3; i++) {
    struct node *x = malloc(sizeof *x + n);
    x->next = head;
    head = x;
  }
  NOTAIL();
  return head;
}
__attribute__((noinline)) static void exit_holding(size_t n) {
  void *volatile held = malloc(n);
  fflush(stdout);
  exit(held == NULL);
}
int main(int argc, char **argv) {
  size_t n = size_arg(argc, argv);
  still_reachable = malloc(n);
  struct node *head = leak_list(n);
  head = launder(NULL);
  if (argc > 2) exit_holding(n);
  return head != NULL;
}
