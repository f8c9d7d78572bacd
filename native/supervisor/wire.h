// The supervisor <-> worker link, one message per SEQPACKET datagram, little endian.
// Mirrored by src/kernel/fanotify/link-wire.ts; keep the two in step.
#ifndef ONDINE_SUPERVISOR_WIRE_H
#define ONDINE_SUPERVISOR_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum {
  WIRE_EVENT = 1,          // S->W, with one fd (SCM_RIGHTS)
  WIRE_ANSWER = 2,         // W->S
  WIRE_READY = 3,          // W->S
  WIRE_STATS_REQUEST = 4,  // W->S
  WIRE_STATS = 5,          // S->W
  WIRE_HINT = 6,           // S->W, with one fd: a read allowed without the worker
};

enum {
  WIRE_EVENT_SIZE = 48,
  WIRE_ANSWER_SIZE = 16,
  WIRE_READY_SIZE = 8,
  WIRE_STATS_REQUEST_SIZE = 8,
  WIRE_STATS_SIZE = 72,
  WIRE_HINT_SIZE = 40,
};

struct wire_event {
  uint32_t id;
  uint64_t offset, count, dev, ino;
  int32_t group_fd;  // the event fd's number in the supervisor (diagnostics)
  uint32_t pid;
};

struct wire_hint {
  uint64_t offset, count, dev, ino;
};

struct wire_answer {
  uint32_t id;
  int32_t err;  // 0 allow, anything else deny (EIO)
};

struct wire_stats {
  uint64_t events, allowed_at_once, forwarded, answered, denied_by_deadline, late_answers,
      worker_restarts, pending;
};

size_t wire_encode_event(uint8_t *out, const struct wire_event *ev);  // WIRE_EVENT_SIZE
size_t wire_encode_stats(uint8_t *out, const struct wire_stats *st);  // WIRE_STATS_SIZE
size_t wire_encode_hint(uint8_t *out, const struct wire_hint *h);     // WIRE_HINT_SIZE
// 0 on success, -1 when the datagram is too short or of the wrong size.
int wire_decode_type(const uint8_t *buf, size_t len, uint32_t *type);
int wire_decode_answer(const uint8_t *buf, size_t len, struct wire_answer *out);

#endif
