/* The sqlite workload (tests/programs/sqlite_workload.sql) without the sqlite3 shell: reads SQL
 * from stdin, runs each statement and prints its rows as the shell's list mode does (columns
 * joined by '|'). bench/check_cost.sh links it with the sqlite amalgamation twice, once plainly
 * and once with -fsanitize=address, so that ASan is timed on the same program as larder's check
 * mode and valgrind (Debian's sqlite3 cannot be rebuilt offline: apt-get source has no deb-src).
 * Usage: sqlite_driver DB < script.sql */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite3.h"

static char *read_all(FILE *f) {
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len - 1 == 0) {
      char *grown = realloc(buf, cap * 2);
      if (!grown) {
        free(buf);
        return NULL;
      }
      buf = grown;
      cap *= 2;
    }
  }
  if (buf) buf[len] = 0;
  return buf;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DB < script.sql\n", argv[0]);
    return 2;
  }
  sqlite3 *db;
  if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
    fprintf(stderr, "open %s: %s\n", argv[1], sqlite3_errmsg(db));
    return 1;
  }
  char *sql = read_all(stdin);
  if (!sql) return 1;
  const char *next = sql;
  int rc = 0;
  while (*next) {
    sqlite3_stmt *stmt = NULL;
    const char *tail;
    if (sqlite3_prepare_v2(db, next, -1, &stmt, &tail) != SQLITE_OK) {
      fprintf(stderr, "prepare: %s\n", sqlite3_errmsg(db));
      rc = 1;
      break;
    }
    next = tail;
    if (!stmt) continue; /* whitespace or a comment */
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
      int n = sqlite3_column_count(stmt);
      for (int i = 0; i < n; i++) {
        const unsigned char *text = sqlite3_column_text(stmt, i);
        printf("%s%s", i ? "|" : "", text ? (const char *)text : "");
      }
      putchar('\n');
    }
    if (step != SQLITE_DONE) {
      fprintf(stderr, "step: %s\n", sqlite3_errmsg(db));
      rc = 1;
    }
    sqlite3_finalize(stmt);
    if (rc) break;
  }
  free(sql);
  sqlite3_close(db);
  return rc;
}
