// A flat array: the pending set is small (bounded by concurrent cold reads), and a linear
// scan beats a hash table's bookkeeping at that size.
#include "pending.h"

#include <stdlib.h>

struct pending *pending_add(struct pending_table *t, const struct pending *p) {
  if (t->len == t->cap) {
    size_t cap = t->cap == 0 ? 64 : t->cap * 2;
    struct pending *items = realloc(t->items, cap * sizeof(*items));
    if (items == NULL) return NULL;
    t->items = items;
    t->cap = cap;
  }
  t->items[t->len] = *p;
  return &t->items[t->len++];
}

struct pending *pending_find(struct pending_table *t, uint32_t id) {
  for (size_t i = 0; i < t->len; i++) {
    if (t->items[i].id == id) return &t->items[i];
  }
  return NULL;
}

void pending_remove(struct pending_table *t, struct pending *p) {
  size_t i = (size_t)(p - t->items);
  t->items[i] = t->items[--t->len];
}

int64_t pending_earliest_deadline(const struct pending_table *t) {
  int64_t earliest = INT64_MAX;
  for (size_t i = 0; i < t->len; i++) {
    if (t->items[i].deadline < earliest) earliest = t->items[i].deadline;
  }
  return earliest;
}
