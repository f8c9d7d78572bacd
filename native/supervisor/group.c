// The fanotify side: reads events, allows what the cache file already holds, hands holes
// to the pending table; and the one place that writes responses to the group.
#define _GNU_SOURCE
#include "supervisor.h"

// ---------------------------------------------------------------------------------------
// Responses: the only writes to the group.

void respond(struct sup *s, int fd, uint32_t response) {
  struct fanotify_response r = {.fd = fd, .response = response};
  ssize_t n;
  do {
    n = write(s->group_fd, &r, sizeof(r));
  } while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof(r)) {
    char e[128];
    log_line(LOG_ERROR, "writing a fanotify response failed", "\"fd\":%d,\"err\":%s", fd,
             errtext(e, sizeof(e), n < 0 ? errno : EIO));
  }
}

void respond_close(struct sup *s, int fd, uint32_t response) {
  respond(s, fd, response);
  close(fd);
}

// Allocated means valid at block granularity: only verified bytes are ever written.
bool range_filled(int fd, uint64_t off, uint64_t end) {
  off_t data = lseek(fd, (off_t)off, SEEK_DATA);
  if (data < 0 || (uint64_t)data != off) return false;
  off_t hole = lseek(fd, (off_t)off, SEEK_HOLE);
  return hole >= 0 && (uint64_t)hole >= end;
}

// ---------------------------------------------------------------------------------------
// fanotify events

void deny_all_pending(struct sup *s, const char *why) {
  if (s->pending.len > 0) {
    log_line(LOG_WARN, "denying pending events with EIO", "\"count\":%zu,\"reason\":\"%s\"",
             s->pending.len, why);
  }
  while (s->pending.len > 0) {
    struct pending *p = &s->pending.items[s->pending.len - 1];
    respond_close(s, p->fd, DENY_EIO);
    pending_remove(&s->pending, p);
  }
}

// A read allowed without the worker (already answered): passes its fd on as a HINT when the
// read continues a stream whose read-ahead needs to move (hints.h), else closes it.
static void maybe_hint(struct sup *s, int fd, const struct stat *st, uint64_t size,
                       uint64_t off, uint64_t end) {
  bool step_due;
  bool continues =
      hint_note(&s->hints, (uint64_t)st->st_dev, (uint64_t)st->st_ino, off, end, false, &step_due);
  if (!continues || !step_due || s->link_fd < 0 || !s->worker_ready || s->shutting_down ||
      end >= size) {
    close(fd);
    return;
  }
  uint64_t ahead = size - end < HINT_LOOKAHEAD ? size : end + HINT_LOOKAHEAD;
  if (range_filled(fd, end, ahead)) {
    close(fd);
    return;
  }
  hint_sent(&s->hints, (uint64_t)st->st_dev, (uint64_t)st->st_ino, off);
  struct wire_hint h = {.offset = off, .count = end - off, .dev = (uint64_t)st->st_dev,
                        .ino = (uint64_t)st->st_ino};
  out_push_hint(s, fd, &h);
}

static void on_pre_access(struct sup *s, int fd, uint32_t pid, bool has_range, uint64_t off,
                          uint64_t count) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    char e[128];
    log_line(LOG_ERROR, "fstat of an event fd failed; denying", "\"err\":%s",
             errtext(e, sizeof(e), errno));
    respond_close(s, fd, DENY_EIO);
    return;
  }
  uint64_t size = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
  if (!has_range) {
    off = 0;
    count = size;
  }
  uint64_t end = count > UINT64_MAX - off ? UINT64_MAX : off + count;
  if (end > size) end = size;
  if (off >= end) {
    s->n.allowed_at_once++;
    respond_close(s, fd, FAN_ALLOW);
    return;
  }
  if (range_filled(fd, off, end)) {
    s->n.allowed_at_once++;
    respond(s, fd, FAN_ALLOW);
    maybe_hint(s, fd, &st, size, off, end);
    return;
  }
  bool step_due;
  hint_note(&s->hints, (uint64_t)st.st_dev, (uint64_t)st.st_ino, off, end, true, &step_due);
  if (s->shutting_down) {
    respond_close(s, fd, DENY_EIO);
    return;
  }
  struct pending p = {.id = s->next_id++,
                      .fd = fd,
                      .deadline = now_ms() + s->deadline_ms,
                      .offset = off,
                      .count = end - off,
                      .dev = (uint64_t)st.st_dev,
                      .ino = (uint64_t)st.st_ino,
                      .pid = pid};
  if (pending_add(&s->pending, &p) == NULL) {
    log_line(LOG_ERROR, "out of memory for a pending event; denying", NULL);
    respond_close(s, fd, DENY_EIO);
    return;
  }
  s->n.forwarded++;
  out_push(s, OUT_EVENT, p.id);
}

static void on_event(struct sup *s, const struct fanotify_event_metadata *m) {
  s->n.events++;
  if (m->mask & FAN_Q_OVERFLOW) {
    log_line(LOG_ERROR, "fanotify queue overflow: the kernel dropped (and allowed) events",
             NULL);
  }
  if (m->fd < 0) return;
  if (m->mask & FAN_PRE_ACCESS) {
    bool has_range = false;
    uint64_t off = 0, count = 0;
    const uint8_t *base = (const uint8_t *)m;
    for (uint32_t i = m->metadata_len; i + 4 <= m->event_len;) {
      uint8_t type = base[i];
      uint16_t len;
      memcpy(&len, base + i + 2, sizeof(len));
      if (len < 4 || i + len > m->event_len) break;
      if (type == FAN_EVENT_INFO_TYPE_RANGE && len >= 24) {
        memcpy(&off, base + i + 8, sizeof(off));
        memcpy(&count, base + i + 16, sizeof(count));
        has_range = true;
      }
      i += len;
    }
    on_pre_access(s, m->fd, (uint32_t)m->pid, has_range, off, count);
    return;
  }
  if (m->mask & PERM_EVENTS) {
    respond_close(s, m->fd, FAN_ALLOW);
  } else {
    close(m->fd);
  }
}

void read_group(struct sup *s) {
  static uint8_t buf[256 * 1024] __attribute__((aligned(8)));
  for (;;) {
    ssize_t n = read(s->group_fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      char e[128];
      log_line(LOG_ERROR, "reading the fanotify group failed", "\"err\":%s",
               errtext(e, sizeof(e), errno));
      return;
    }
    if (n == 0) return;
    // A read that left room for more events found the queue drained: skip the read that
    // would only say EAGAIN (poll is level triggered: what arrives meanwhile wakes it again).
    bool drained = (size_t)n < sizeof(buf) / 2;
    for (ssize_t off = 0; off + (ssize_t)FAN_EVENT_METADATA_LEN <= n;) {
      const struct fanotify_event_metadata *m = (const void *)(buf + off);
      if (m->vers != FANOTIFY_METADATA_VERSION || m->event_len < FAN_EVENT_METADATA_LEN ||
          off + (ssize_t)m->event_len > n) {
        // Cannot happen with a kernel that speaks version 3; unparseable events cannot be
        // answered, so going on would leave readers hanging on this group anyway.
        log_line(LOG_ERROR, "unparseable fanotify event; exiting",
                 "\"vers\":%u,\"eventLen\":%u", m->vers, m->event_len);
        exit(70);
      }
      on_event(s, m);
      off += m->event_len;
    }
    if (drained && !s->shutting_down) return;
  }
}
