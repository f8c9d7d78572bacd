// Read hints (see hints.h): a small table of the files being read, no allocation.
#include "hints.h"

static struct hint_file *find(struct hint_table *t, uint64_t dev, uint64_t ino) {
  for (unsigned i = 0; i < HINT_FILES; i++) {
    struct hint_file *f = &t->files[i];
    if (f->valid && f->dev == dev && f->ino == ino) return f;
  }
  return 0;
}

bool hint_note(struct hint_table *t, uint64_t dev, uint64_t ino, uint64_t off, uint64_t end,
               bool forwarded, bool *step_due) {
  *step_due = false;
  struct hint_file *f = find(t, dev, ino);
  if (f == 0) {
    f = &t->files[t->next];
    t->next = (t->next + 1) % HINT_FILES;
    *f = (struct hint_file){.dev = dev, .ino = ino, .prev_end = end, .hinted_at = off,
                            .valid = true};
    return false;
  }
  bool continues = off + HINT_SLACK >= f->prev_end && off <= f->prev_end + HINT_SLACK;
  f->prev_end = end;
  if (forwarded) {
    f->hinted_at = off;
    return continues;
  }
  *step_due = off < f->hinted_at || off - f->hinted_at >= HINT_STEP;
  return continues;
}

void hint_sent(struct hint_table *t, uint64_t dev, uint64_t ino, uint64_t off) {
  struct hint_file *f = find(t, dev, ino);
  if (f != 0) f->hinted_at = off;
}
