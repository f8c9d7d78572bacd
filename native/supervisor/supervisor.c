// ondine-supervisor: holds the fanotify pre-content group so that a crash of the Node worker
// never turns into silent zeros (the kernel ALLOWS the pending events of a group whose last
// holder dies). It reads every event, allows at once the ranges the cache file already has,
// forwards the rest to the worker over a SEQPACKET link under ids of its own, and alone
// writes responses: a late answer from a dead worker can never reach a reused fd number.
// An event nobody answers by its deadline gets EIO. The worker is restarted when it dies;
// pending events survive and go to the next generation.
// Not here: fetching, the catalog, marks (the worker adds them through its copy of the group).
#define _GNU_SOURCE
#include "supervisor.h"

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *errtext(char *buf, size_t size, int err) {
  return log_json_string(buf, size, strerror(err));
}

// ---------------------------------------------------------------------------------------
// Time: deadlines, restarts, the shutdown kill

// `fired`: poll saw the timerfd readable (it is one-shot: it is disarmed now). Deadlines are
// checked on every loop turn anyway; the timerfd only wakes the loop when nothing else does.
static void run_timers(struct sup *s, bool fired) {
  if (fired) {
    uint64_t expirations;
    while (read(s->timer_fd, &expirations, sizeof(expirations)) > 0) {
    }
    s->timer_armed_at = 0;
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
  // A syscall only when the timer must fire sooner than it is set to: one set later than
  // needed (the event it was for was answered) costs one spurious wake, not a syscall per
  // event on both loop turns of every event.
  if (next == INT64_MAX) return;
  if (next <= 0) next = 1;
  if (s->timer_armed_at != 0 && s->timer_armed_at <= next) return;
  struct itimerspec its;
  memset(&its, 0, sizeof(its));
  its.it_value.tv_sec = next / 1000;
  its.it_value.tv_nsec = (next % 1000) * 1000000;
  if (timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0) s->timer_armed_at = next;
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
    run_timers(&s, (fds[2].revents & POLLIN) != 0);
  }
}
