// ondine-supervisor: holds the fanotify pre-content group so that a crash of the Node worker
// never turns into silent zeros (the kernel ALLOWS the pending events of a group whose last
// holder dies). It reads every event, allows at once the ranges the cache file already has,
// forwards the rest to the worker over a SEQPACKET link under ids of its own, and alone
// writes responses: a late answer from a dead worker can never reach a reused fd number.
// An event nobody answers by its deadline gets EIO. The worker is restarted when it dies;
// pending events survive and go to the next generation.
// Not here: fetching, the catalog, marks (the worker adds them through its copy of the group).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pending.h"
#include "wire.h"

// Newer than Debian bookworm's headers (Linux 6.14+ uapi).
#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#ifndef FAN_EVENT_INFO_TYPE_RANGE
#define FAN_EVENT_INFO_TYPE_RANGE 6
#endif
#define DENY_EIO (FAN_DENY | ((uint32_t)EIO << 24))
#define PERM_EVENTS (FAN_OPEN_PERM | FAN_ACCESS_PERM | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS)

#define WORKER_LINK_FD 3
#define WORKER_GROUP_FD 4
#define QUICK_DEATH_MS 10000
#define BACKOFF_CAP_MS 2000

enum out_kind { OUT_EVENT, OUT_STATS };
struct out_item {
  enum out_kind kind;
  uint32_t id;
};

struct counters {
  uint64_t events, allowed_at_once, forwarded, answered, denied_by_deadline, late_answers,
      worker_restarts;
};

struct sup {
  int64_t deadline_ms;
  int64_t restart_delay_ms;
  char **worker_argv;

  int group_fd;
  int sig_fd;
  int timer_fd;
  int link_fd;  // -1 while no worker is connected

  pid_t worker_pid;  // 0 while none runs
  unsigned generation;  // of the running (or last) worker
  bool started_once;
  bool worker_ready;
  int64_t worker_started;
  int64_t next_delay_ms;
  int64_t restart_at;  // 0: no restart scheduled

  bool shutting_down;
  int64_t kill_at;  // SIGKILL the worker at this time during shutdown; 0: none

  uint32_t next_id;
  struct pending_table pending;

  struct out_item *out;
  size_t out_head, out_len, out_cap;

  struct counters n;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *errtext(char *buf, size_t size, int err) {
  return log_json_string(buf, size, strerror(err));
}

// ---------------------------------------------------------------------------------------
// Responses: the only writes to the group.

static void respond(struct sup *s, int fd, uint32_t response) {
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

static void respond_close(struct sup *s, int fd, uint32_t response) {
  respond(s, fd, response);
  close(fd);
}

// Allocated means valid at block granularity: only verified bytes are ever written.
static bool range_filled(int fd, uint64_t off, uint64_t end) {
  off_t data = lseek(fd, (off_t)off, SEEK_DATA);
  if (data < 0 || (uint64_t)data != off) return false;
  off_t hole = lseek(fd, (off_t)off, SEEK_HOLE);
  return hole >= 0 && (uint64_t)hole >= end;
}

// ---------------------------------------------------------------------------------------
// The out queue to the worker: ids, not messages, so an event answered meanwhile (deadline)
// is simply skipped and no fd is held twice.

static void out_push(struct sup *s, enum out_kind kind, uint32_t id) {
  if (s->link_fd < 0) return;
  if (s->out_head + s->out_len == s->out_cap) {
    if (s->out_head > 0) {
      memmove(s->out, s->out + s->out_head, s->out_len * sizeof(*s->out));
      s->out_head = 0;
    }
    if (s->out_len == s->out_cap) {
      size_t cap = s->out_cap == 0 ? 64 : s->out_cap * 2;
      struct out_item *items = realloc(s->out, cap * sizeof(*items));
      if (items == NULL) {
        log_line(LOG_ERROR, "out of memory queueing for the worker; the deadline will answer",
                 "\"id\":%" PRIu32, id);
        return;
      }
      s->out = items;
      s->out_cap = cap;
    }
  }
  s->out[s->out_head + s->out_len++] = (struct out_item){kind, id};
}

static void out_clear(struct sup *s) {
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

static void close_link(struct sup *s) {
  if (s->link_fd >= 0) close(s->link_fd);
  s->link_fd = -1;
  out_clear(s);
}

static void flush_out(struct sup *s) {
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
    }
    s->out_head++;
    s->out_len--;
  }
  if (s->out_len == 0) s->out_head = 0;
}

// ---------------------------------------------------------------------------------------
// fanotify events

static void deny_all_pending(struct sup *s, const char *why) {
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
  if (off >= end || range_filled(fd, off, end)) {
    s->n.allowed_at_once++;
    respond_close(s, fd, FAN_ALLOW);
    return;
  }
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

static void read_group(struct sup *s) {
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
  }
}

// ---------------------------------------------------------------------------------------
// The worker

static void schedule_timer(struct sup *s);

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

static void read_link(struct sup *s) {
  while (s->link_fd >= 0) {
    uint8_t buf[256];
    union {
      char buf[CMSG_SPACE(sizeof(int) * 8)];
      struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    ssize_t n = recvmsg(s->link_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      char e[128];
      log_line(LOG_WARN, "reading the worker link failed", "\"err\":%s",
               errtext(e, sizeof(e), errno));
      close_link(s);
      return;
    }
    // The worker has no reason to send fds; never keep any it does send.
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
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
    if (wire_decode_type(buf, (size_t)n, &type) != 0 || (msg.msg_flags & MSG_TRUNC)) {
      log_line(LOG_WARN, "malformed message from the worker", "\"length\":%zd", n);
      continue;
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
static void place_fd(int fd, int target) {
  if (fd == target) {
    fcntl(fd, F_SETFD, 0);
  } else if (dup2(fd, target) < 0) {
    _exit(127);
  }
}

static void start_worker(struct sup *s) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0) {
    char e[128];
    log_line(LOG_ERROR, "socketpair failed; retrying", "\"err\":%s",
             errtext(e, sizeof(e), errno));
    s->restart_at = now_ms() + BACKOFF_CAP_MS;
    return;
  }
  unsigned generation = s->started_once ? s->generation + 1 : 0;
  pid_t pid = fork();
  if (pid < 0) {
    char e[128];
    log_line(LOG_ERROR, "fork failed; retrying", "\"err\":%s", errtext(e, sizeof(e), errno));
    close(pair[0]);
    close(pair[1]);
    s->restart_at = now_ms() + BACKOFF_CAP_MS;
    return;
  }
  if (pid == 0) {
    // Above 4 first, so neither dup2 below can clobber the other source.
    int link = fcntl(pair[1], F_DUPFD_CLOEXEC, 10);
    int group = fcntl(s->group_fd, F_DUPFD_CLOEXEC, 10);
    if (link < 0 || group < 0) _exit(127);
    place_fd(link, WORKER_LINK_FD);
    place_fd(group, WORKER_GROUP_FD);
    char gen[16];
    snprintf(gen, sizeof(gen), "%u", generation);
    setenv("ONDINE_SUPERVISOR_FD", "3", 1);
    setenv("ONDINE_FANOTIFY_FD", "4", 1);
    setenv("ONDINE_WORKER_GENERATION", gen, 1);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(s->worker_argv[0], s->worker_argv);
    char e[128], cmd[512];
    log_line(LOG_ERROR, "cannot start the worker", "\"cmd\":%s,\"err\":%s",
             log_json_string(cmd, sizeof(cmd), s->worker_argv[0]),
             errtext(e, sizeof(e), errno));
    _exit(127);
  }
  close(pair[1]);
  if (s->started_once) s->n.worker_restarts++;
  s->started_once = true;
  s->generation = generation;
  s->worker_pid = pid;
  s->worker_ready = false;
  s->worker_started = now_ms();
  s->restart_at = 0;
  s->link_fd = pair[0];
  out_clear(s);
  log_line(LOG_INFO, "worker started", "\"workerPid\":%d,\"generation\":%u", (int)pid,
           generation);

  // What the dead worker filled before dying needs nobody; the rest goes to the new one,
  // each keeping its original deadline.
  for (size_t i = 0; i < s->pending.len;) {
    struct pending *p = &s->pending.items[i];
    if (range_filled(p->fd, p->offset, p->offset + p->count)) {
      s->n.allowed_at_once++;
      respond_close(s, p->fd, FAN_ALLOW);
      pending_remove(&s->pending, p);
      continue;
    }
    out_push(s, OUT_EVENT, p->id);
    i++;
  }
}

static void finish(struct sup *s, int code) __attribute__((noreturn));
static void finish(struct sup *s, int code) {
  s->shutting_down = true;
  read_group(s);  // events already queued: answer them rather than leave them to the kernel
  deny_all_pending(s, "exit");
  close(s->group_fd);
  log_line(LOG_INFO, "supervisor exits", "\"code\":%d", code);
  exit(code);
}

static void on_worker_exit(struct sup *s, int status) {
  read_link(s);  // answers the worker sent before dying are still good
  close_link(s);
  pid_t pid = s->worker_pid;
  s->worker_pid = 0;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  log_line(s->shutting_down || code == 0 ? LOG_INFO : LOG_WARN, "worker exited",
           "\"workerPid\":%d,\"generation\":%u,\"code\":%d,\"signal\":%d,\"ready\":%s",
           (int)pid, s->generation, code, sig, s->worker_ready ? "true" : "false");
  if (s->shutting_down || code == 0) finish(s, 0);
  if (s->generation == 0 && !s->worker_ready) {
    log_line(LOG_ERROR, "the worker failed to start; not retrying", "\"code\":%d", code);
    finish(s, code > 0 ? code : 1);
  }
  int64_t now = now_ms();
  int64_t cap = s->restart_delay_ms > BACKOFF_CAP_MS ? s->restart_delay_ms : BACKOFF_CAP_MS;
  int64_t delay;
  if (now - s->worker_started < QUICK_DEATH_MS) {
    delay = s->next_delay_ms;
    s->next_delay_ms = delay * 2 > cap ? cap : delay * 2;
  } else {
    delay = s->restart_delay_ms;
    s->next_delay_ms = delay * 2 > cap ? cap : delay * 2;
  }
  s->restart_at = now + delay;
  log_line(LOG_INFO, "restarting the worker", "\"delayMs\":%" PRId64 ",\"pending\":%zu", delay,
           s->pending.len);
}

static void begin_shutdown(struct sup *s, int signo) {
  if (s->shutting_down) return;
  s->shutting_down = true;
  log_line(LOG_INFO, "shutting down", "\"signal\":%d,\"workerPid\":%d", signo,
           (int)s->worker_pid);
  if (s->worker_pid == 0) finish(s, 0);
  kill(s->worker_pid, SIGTERM);
  s->kill_at = now_ms() + s->deadline_ms;
}

static void read_signals(struct sup *s) {
  struct signalfd_siginfo si;
  while (read(s->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) begin_shutdown(s, (int)si.ssi_signo);
  }
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == s->worker_pid) on_worker_exit(s, status);
  }
}

// ---------------------------------------------------------------------------------------
// Time: deadlines, restarts, the shutdown kill

static void run_timers(struct sup *s) {
  uint64_t expirations;
  while (read(s->timer_fd, &expirations, sizeof(expirations)) > 0) {
  }
  int64_t now = now_ms();
  for (size_t i = 0; i < s->pending.len;) {
    struct pending *p = &s->pending.items[i];
    if (p->deadline > now) {
      i++;
      continue;
    }
    s->n.denied_by_deadline++;
    log_line(LOG_WARN, "event unanswered by its deadline; denying with EIO",
             "\"id\":%" PRIu32 ",\"offset\":%" PRIu64 ",\"count\":%" PRIu64 ",\"ino\":%" PRIu64,
             p->id, p->offset, p->count, p->ino);
    respond_close(s, p->fd, DENY_EIO);
    pending_remove(&s->pending, p);
  }
  if (s->restart_at != 0 && s->restart_at <= now && s->worker_pid == 0 && !s->shutting_down) {
    start_worker(s);
  }
  if (s->kill_at != 0 && s->kill_at <= now && s->worker_pid != 0) {
    log_line(LOG_WARN, "the worker ignored SIGTERM; killing it", "\"workerPid\":%d",
             (int)s->worker_pid);
    kill(s->worker_pid, SIGKILL);
    s->kill_at = 0;
  }
}

static void schedule_timer(struct sup *s) {
  int64_t next = pending_earliest_deadline(&s->pending);
  if (s->restart_at != 0 && s->restart_at < next) next = s->restart_at;
  if (s->kill_at != 0 && s->kill_at < next) next = s->kill_at;
  struct itimerspec its;
  memset(&its, 0, sizeof(its));
  if (next != INT64_MAX) {
    if (next <= 0) next = 1;
    its.it_value.tv_sec = next / 1000;
    its.it_value.tv_nsec = (next % 1000) * 1000000;
  }
  timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

// ---------------------------------------------------------------------------------------

static void usage(void) {
  fprintf(stderr,
          "usage: ondine-supervisor [--deadline-ms N] [--restart-delay-ms N] -- <worker argv...>\n");
  exit(64);
}

static int64_t parse_ms(const char *s) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 24LL * 3600 * 1000) usage();
  return v;
}

static void parse_args(struct sup *s, int argc, char **argv) {
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "--deadline-ms") == 0 && i + 1 < argc) {
      s->deadline_ms = parse_ms(argv[++i]);
    } else if (strcmp(argv[i], "--restart-delay-ms") == 0 && i + 1 < argc) {
      s->restart_delay_ms = parse_ms(argv[++i]);
    } else {
      usage();
    }
  }
  if (i + 1 >= argc) usage();
  s->worker_argv = argv + i + 1;
}

static void setup(struct sup *s) {
  // Every pending event holds an fd until answered; a read that cannot get one is denied by
  // the kernel. Take the whole hard limit rather than fail readers at 1024.
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  s->group_fd = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK |
                                  FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS,
                              O_RDWR | O_LARGEFILE);
  if (s->group_fd < 0) {
    int err = errno;
    char e[128];
    if (err == EINVAL) {
      log_line(LOG_ERROR,
               "this kernel lacks fanotify pre-content events (Linux 6.14+ with "
               "CONFIG_FANOTIFY_ACCESS_PERMISSIONS)",
               "\"err\":%s", errtext(e, sizeof(e), err));
    } else if (err == EPERM) {
      log_line(LOG_ERROR, "fanotify pre-content events need CAP_SYS_ADMIN in the initial user namespace "
               "(run as root, outside user namespaces)",
               "\"err\":%s", errtext(e, sizeof(e), err));
    } else {
      log_line(LOG_ERROR, "fanotify_init failed", "\"err\":%s", errtext(e, sizeof(e), err));
    }
    exit(3);
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  s->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (s->sig_fd < 0 || s->timer_fd < 0) {
    char e[128];
    log_line(LOG_ERROR, "signalfd/timerfd failed", "\"err\":%s", errtext(e, sizeof(e), errno));
    exit(1);
  }
}

int main(int argc, char **argv) {
  static struct sup s;
  s.deadline_ms = 35000;
  s.restart_delay_ms = 100;
  s.link_fd = -1;
  s.next_id = 1;
  parse_args(&s, argc, argv);
  s.next_delay_ms = s.restart_delay_ms;
  setup(&s);
  log_line(LOG_INFO, "supervisor started",
           "\"deadlineMs\":%" PRId64 ",\"restartDelayMs\":%" PRId64, s.deadline_ms,
           s.restart_delay_ms);
  start_worker(&s);

  for (;;) {
    flush_out(&s);
    schedule_timer(&s);
    struct pollfd fds[4] = {
        {.fd = s.group_fd, .events = POLLIN},
        {.fd = s.sig_fd, .events = POLLIN},
        {.fd = s.timer_fd, .events = POLLIN},
        {.fd = s.link_fd, .events = (short)(POLLIN | (s.out_len > 0 ? POLLOUT : 0))},
    };
    int r = poll(fds, s.link_fd >= 0 ? 4 : 3, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      char e[128];
      log_line(LOG_ERROR, "poll failed", "\"err\":%s", errtext(e, sizeof(e), errno));
      finish(&s, 1);
    }
    // Answers first: they free fds and may make room before new events arrive.
    if (s.link_fd >= 0 && (fds[3].revents & (POLLIN | POLLHUP | POLLERR))) read_link(&s);
    if (fds[0].revents & POLLIN) read_group(&s);
    if (fds[1].revents & POLLIN) read_signals(&s);
    run_timers(&s);
  }
}
