// Read hints: which reads the supervisor allowed on its own the worker should still hear of.
// A sequential reader inside read-ahead that already landed raises no event the worker sees,
// so the worker's read-ahead would only move on at the reader's next miss (a stall per
// window). A read that continues the previous read of its file, lies past the last hint by a
// step, and has a hole within the look-ahead past it, is passed on as a HINT (with its fd, to
// write read-ahead through). Mirrored by src/kernel/fanotify/read-hints.ts; keep in step.
#ifndef ONDINE_SUPERVISOR_HINTS_H
#define ONDINE_SUPERVISOR_HINTS_H

#include <stdbool.h>
#include <stdint.h>

#define HINT_FILES 16                // files remembered (cache files being read now)
#define HINT_SLACK (128u << 10)      // a read within this of the previous one's end continues it
#define HINT_STEP (1u << 20)         // at most one hint per this many bytes a stream moves
#define HINT_LOOKAHEAD (4u << 20)    // a hole this close past the read: read-ahead must move
#define HINT_QUEUE_MAX 64            // hints waiting for the link beyond this are dropped

struct hint_file {
  uint64_t dev, ino;
  uint64_t prev_end;   // end of the last read of this file the supervisor saw
  uint64_t hinted_at;  // offset of the last read the worker heard of (event or hint)
  bool valid;
};

struct hint_table {
  struct hint_file files[HINT_FILES];
  unsigned next;  // replaced next when a new file comes (round robin)
};

// Notes a read [off, end) of the file; returns whether it continues that file's previous read.
// `forwarded`: the worker gets this read as an EVENT (it counts as heard of).
bool hint_note(struct hint_table *t, uint64_t dev, uint64_t ino, uint64_t off, uint64_t end,
               bool forwarded, bool *step_due);
// After hint_note said continues && step_due and the caller decided to send: remember it.
void hint_sent(struct hint_table *t, uint64_t dev, uint64_t ino, uint64_t off);

#endif
