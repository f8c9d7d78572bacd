// The events the supervisor holds for the worker: each owns its event fd until answered.
// Ids are handed out increasing and never reused while pending, so a late ANSWER can never
// match another event.
#ifndef ONDINE_SUPERVISOR_PENDING_H
#define ONDINE_SUPERVISOR_PENDING_H

#include <stddef.h>
#include <stdint.h>

struct pending {
  uint32_t id;
  int fd;            // the event fd; the group matches our response to this number
  int64_t deadline;  // CLOCK_MONOTONIC ms
  uint64_t offset;
  uint64_t count;
  uint64_t dev;
  uint64_t ino;
  uint32_t pid;
};

struct pending_table {
  struct pending *items;
  size_t len;
  size_t cap;
};

// Returns the new entry (copied from *p), or NULL when memory runs out.
struct pending *pending_add(struct pending_table *t, const struct pending *p);
struct pending *pending_find(struct pending_table *t, uint32_t id);
// Removes the entry `p` points at; pointers into the table are invalid afterwards.
void pending_remove(struct pending_table *t, struct pending *p);
int64_t pending_earliest_deadline(const struct pending_table *t);  // INT64_MAX if empty

#endif
