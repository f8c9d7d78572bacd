// Byte-wise little-endian packing, so the layout does not depend on struct padding or on
// the host's byte order.
#include "wire.h"

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t wire_encode_event(uint8_t *out, const struct wire_event *ev) {
  put32(out, WIRE_EVENT);
  put32(out + 4, ev->id);
  put64(out + 8, ev->offset);
  put64(out + 16, ev->count);
  put64(out + 24, ev->dev);
  put64(out + 32, ev->ino);
  put32(out + 40, (uint32_t)ev->group_fd);
  put32(out + 44, ev->pid);
  return WIRE_EVENT_SIZE;
}

size_t wire_encode_stats(uint8_t *out, const struct wire_stats *st) {
  const uint64_t values[8] = {st->events,   st->allowed_at_once,    st->forwarded,
                              st->answered, st->denied_by_deadline, st->late_answers,
                              st->worker_restarts, st->pending};
  put32(out, WIRE_STATS);
  put32(out + 4, 0);
  for (int i = 0; i < 8; i++) put64(out + 8 + 8 * i, values[i]);
  return WIRE_STATS_SIZE;
}

size_t wire_encode_hint(uint8_t *out, const struct wire_hint *h) {
  put32(out, WIRE_HINT);
  put32(out + 4, 0);
  put64(out + 8, h->offset);
  put64(out + 16, h->count);
  put64(out + 24, h->dev);
  put64(out + 32, h->ino);
  return WIRE_HINT_SIZE;
}

int wire_decode_type(const uint8_t *buf, size_t len, uint32_t *type) {
  if (len < 4) return -1;
  *type = get32(buf);
  return 0;
}

int wire_decode_answer(const uint8_t *buf, size_t len, struct wire_answer *out) {
  if (len != WIRE_ANSWER_SIZE || get32(buf) != WIRE_ANSWER) return -1;
  out->id = get32(buf + 4);
  out->err = (int32_t)get32(buf + 8);
  return 0;
}
