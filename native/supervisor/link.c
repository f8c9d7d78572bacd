// The datagram link to the worker: the out queue (ids, sent when the socket takes them)
// and the messages the worker sends back.
#define _GNU_SOURCE
#include "supervisor.h"

// ---------------------------------------------------------------------------------------
// The out queue to the worker: ids, not messages, so an event answered meanwhile (deadline)
// is simply skipped and no fd is held twice.

// Room for one more item; false when memory runs out.
static bool out_room(struct sup *s) {
  if (s->out_head + s->out_len == s->out_cap) {
    if (s->out_head > 0) {
      memmove(s->out, s->out + s->out_head, s->out_len * sizeof(*s->out));
      s->out_head = 0;
    }
    if (s->out_len == s->out_cap) {
      size_t cap = s->out_cap == 0 ? 64 : s->out_cap * 2;
      struct out_item *items = realloc(s->out, cap * sizeof(*items));
      if (items == NULL) return false;
      s->out = items;
      s->out_cap = cap;
    }
  }
  return true;
}

void out_push(struct sup *s, enum out_kind kind, uint32_t id) {
  if (s->link_fd < 0) return;
  if (!out_room(s)) {
    log_line(LOG_ERROR, "out of memory queueing for the worker; the deadline will answer",
             "\"id\":%" PRIu32, id);
    return;
  }
  s->out[s->out_head + s->out_len++] = (struct out_item){.kind = kind, .id = id, .fd = -1};
}

// Hints are advice: a busy link drops them rather than hold many fds.
void out_push_hint(struct sup *s, int fd, const struct wire_hint *h) {
  if (s->link_fd < 0 || s->out_hints >= HINT_QUEUE_MAX || !out_room(s)) {
    s->n.hints_dropped++;
    close(fd);
    return;
  }
  s->out[s->out_head + s->out_len++] = (struct out_item){.kind = OUT_HINT, .fd = fd, .hint = *h};
  s->out_hints++;
}

void out_clear(struct sup *s) {
  for (size_t i = 0; i < s->out_len; i++) {
    struct out_item *item = &s->out[s->out_head + i];
    if (item->kind == OUT_HINT && item->fd >= 0) close(item->fd);
  }
  s->out_hints = 0;
  s->out_head = 0;
  s->out_len = 0;
}

// 0 sent (or nothing to send), 1 would block, -1 link broken.
static int send_datagram(int fd, const void *buf, size_t len, int pass_fd) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (pass_fd >= 0) {
    memset(&control, 0, sizeof(control));
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return 0;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 1;
  return -1;
}

void close_link(struct sup *s) {
  if (s->link_fd >= 0) close(s->link_fd);
  s->link_fd = -1;
  out_clear(s);
}

void flush_out(struct sup *s) {
  while (s->out_len > 0 && s->link_fd >= 0) {
    struct out_item item = s->out[s->out_head];
    uint8_t buf[WIRE_STATS_SIZE];
    size_t len = 0;
    int pass_fd = -1;
    if (item.kind == OUT_EVENT) {
      struct pending *p = pending_find(&s->pending, item.id);
      if (p != NULL) {
        struct wire_event ev = {p->id, p->offset, p->count, p->dev, p->ino, p->fd, p->pid};
        len = wire_encode_event(buf, &ev);
        pass_fd = p->fd;
      }
    } else if (item.kind == OUT_HINT) {
      len = wire_encode_hint(buf, &item.hint);
      pass_fd = item.fd;
    } else {
      struct wire_stats st = {s->n.events, s->n.allowed_at_once, s->n.forwarded,
                              s->n.answered, s->n.denied_by_deadline, s->n.late_answers,
                              s->n.worker_restarts, s->pending.len};
      len = wire_encode_stats(buf, &st);
    }
    if (len > 0) {
      int r = send_datagram(s->link_fd, buf, len, pass_fd);
      if (r == 1) return;  // POLLOUT will call again
      if (r < 0) {
        char e[128];
        log_line(LOG_WARN, "the worker link is broken; waiting for the worker to exit",
                 "\"err\":%s", errtext(e, sizeof(e), errno));
        close_link(s);
        return;
      }
      if (item.kind == OUT_HINT) {
        close(item.fd);  // the worker has its own copy now
        s->out_hints--;
        s->n.hints++;
      }
    }
    s->out_head++;
    s->out_len--;
  }
  if (s->out_len == 0) s->out_head = 0;
}

// ---------------------------------------------------------------------------------------
// The worker

static void on_answer(struct sup *s, const struct wire_answer *a) {
  struct pending *p = pending_find(&s->pending, a->id);
  if (p == NULL) {
    s->n.late_answers++;
    log_line(LOG_DEBUG, "answer for an unknown or already answered id", "\"id\":%" PRIu32,
             a->id);
    return;
  }
  s->n.answered++;
  if (a->err != 0) {
    log_line(LOG_INFO, "worker denied an event", "\"id\":%" PRIu32 ",\"err\":%" PRId32, a->id,
             a->err);
  }
  respond_close(s, p->fd, a->err == 0 ? FAN_ALLOW : DENY_EIO);
  pending_remove(&s->pending, p);
}

#define LINK_BATCH 16

// One message from the worker (already received; its fds are closed here).
static void on_link_message(struct sup *s, const uint8_t *buf, ssize_t n, struct msghdr *msg);

// Several datagrams per recvmmsg: a worker answering a burst costs one syscall, and a batch
// that comes back short means the socket is drained, so no extra call just to hear EAGAIN
// (poll is level triggered: what arrives meanwhile wakes the loop again).
void read_link(struct sup *s) {
  static uint8_t bufs[LINK_BATCH][256];
  static union {
    char buf[CMSG_SPACE(sizeof(int) * 8)];
    struct cmsghdr align;
  } controls[LINK_BATCH];
  while (s->link_fd >= 0) {
    struct mmsghdr msgs[LINK_BATCH];
    struct iovec iovs[LINK_BATCH];
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < LINK_BATCH; i++) {
      iovs[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof(bufs[i])};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = controls[i].buf;
      msgs[i].msg_hdr.msg_controllen = sizeof(controls[i].buf);
    }
    int got = recvmmsg(s->link_fd, msgs, LINK_BATCH, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, NULL);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      char e[128];
      log_line(LOG_WARN, "reading the worker link failed", "\"err\":%s",
               errtext(e, sizeof(e), errno));
      close_link(s);
      return;
    }
    for (int i = 0; i < got && s->link_fd >= 0; i++) {
      on_link_message(s, bufs[i], (ssize_t)msgs[i].msg_len, &msgs[i].msg_hdr);
    }
    if (got < LINK_BATCH) return;
  }
}

static void on_link_message(struct sup *s, const uint8_t *buf, ssize_t n, struct msghdr *msg) {
  {
    // The worker has no reason to send fds; never keep any it does send.
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t j = 0; j < k; j++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
        close(fd);
      }
    }
    if (n == 0) {
      log_line(LOG_INFO, "the worker closed its link", "\"workerPid\":%d,\"generation\":%u",
               (int)s->worker_pid, s->generation);
      close_link(s);
      return;
    }
    uint32_t type;
    if (wire_decode_type(buf, (size_t)n, &type) != 0 || (msg->msg_flags & MSG_TRUNC)) {
      log_line(LOG_WARN, "malformed message from the worker", "\"length\":%zd", n);
      return;
    }
    switch (type) {
      case WIRE_ANSWER: {
        struct wire_answer a;
        if (wire_decode_answer(buf, (size_t)n, &a) != 0) {
          log_line(LOG_WARN, "malformed ANSWER from the worker", "\"length\":%zd", n);
          break;
        }
        on_answer(s, &a);
        break;
      }
      case WIRE_READY:
        if (n != WIRE_READY_SIZE) {
          log_line(LOG_WARN, "malformed READY from the worker", "\"length\":%zd", n);
          break;
        }
        if (!s->worker_ready) {
          s->worker_ready = true;
          log_line(LOG_INFO, "worker ready", "\"workerPid\":%d,\"generation\":%u",
                   (int)s->worker_pid, s->generation);
        }
        break;
      case WIRE_STATS_REQUEST:
        if (n != WIRE_STATS_REQUEST_SIZE) {
          log_line(LOG_WARN, "malformed STATS_REQUEST from the worker", "\"length\":%zd", n);
          break;
        }
        out_push(s, OUT_STATS, 0);
        break;
      default:
        log_line(LOG_WARN, "unknown message type from the worker", "\"type\":%" PRIu32, type);
    }
  }
}

// Moves `fd` to `target` in a child about to exec, without close-on-exec.