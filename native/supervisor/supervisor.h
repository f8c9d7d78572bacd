// Shared state of ondine-supervisor's parts: group.c (fanotify events and responses), link.c
// (the datagram link to the worker), worker.c (start, death, restart, shutdown) and
// supervisor.c (arguments, set-up, the poll loop and its timers).
#ifndef ONDINE_SUPERVISOR_H
#define ONDINE_SUPERVISOR_H
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

#include "hints.h"
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

enum out_kind { OUT_EVENT, OUT_STATS, OUT_HINT };
struct out_item {
  enum out_kind kind;
  uint32_t id;
  int fd;                 // OUT_HINT: the event fd, owned by the queue until sent
  struct wire_hint hint;  // OUT_HINT
};

struct counters {
  uint64_t events, allowed_at_once, forwarded, answered, denied_by_deadline, late_answers,
      worker_restarts;
  uint64_t hints, hints_dropped;  // not on the wire: for the shutdown log line
};

struct sup {
  int64_t deadline_ms;
  int64_t restart_delay_ms;
  char **worker_argv;

  int group_fd;
  int sig_fd;
  int timer_fd;
  int64_t timer_armed_at;  // when the timerfd fires next (CLOCK_MONOTONIC ms); 0: disarmed
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
  size_t out_hints;  // OUT_HINT items queued (each holds an fd)

  struct hint_table hints;

  struct counters n;
};


int64_t now_ms(void);
const char *errtext(char *buf, size_t size, int err);

// group.c
void respond(struct sup *s, int fd, uint32_t response);
void respond_close(struct sup *s, int fd, uint32_t response);
bool range_filled(int fd, uint64_t off, uint64_t end);
void deny_all_pending(struct sup *s, const char *why);
void read_group(struct sup *s);

// link.c
void out_push(struct sup *s, enum out_kind kind, uint32_t id);
// Queues a HINT, taking `fd` (closed once sent, or at once when the queue is full).
void out_push_hint(struct sup *s, int fd, const struct wire_hint *h);
void out_clear(struct sup *s);
void close_link(struct sup *s);
void flush_out(struct sup *s);
void read_link(struct sup *s);

// worker.c
void start_worker(struct sup *s);
void finish(struct sup *s, int code) __attribute__((noreturn));
void on_worker_exit(struct sup *s, int status);
void begin_shutdown(struct sup *s, int signo);
void read_signals(struct sup *s);

#endif
