// The worker's life: fork+exec with the link at fd 3 and the group at fd 4, exits and
// restarts with backoff, and the supervisor's own exit paths.
#define _GNU_SOURCE
#include "supervisor.h"

static void place_fd(int fd, int target) {
  if (fd == target) {
    fcntl(fd, F_SETFD, 0);
  } else if (dup2(fd, target) < 0) {
    _exit(127);
  }
}

void start_worker(struct sup *s) {
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

void finish(struct sup *s, int code) {
  s->shutting_down = true;
  read_group(s);  // events already queued: answer them rather than leave them to the kernel
  deny_all_pending(s, "exit");
  close(s->group_fd);
  log_line(LOG_INFO, "supervisor exits",
           "\"code\":%d,\"events\":%" PRIu64 ",\"hints\":%" PRIu64 ",\"hintsDropped\":%" PRIu64,
           code, s->n.events, s->n.hints, s->n.hints_dropped);
  exit(code);
}

void on_worker_exit(struct sup *s, int status) {
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

void begin_shutdown(struct sup *s, int signo) {
  if (s->shutting_down) return;
  s->shutting_down = true;
  log_line(LOG_INFO, "shutting down", "\"signal\":%d,\"workerPid\":%d", signo,
           (int)s->worker_pid);
  if (s->worker_pid == 0) finish(s, 0);
  kill(s->worker_pid, SIGTERM);
  s->kill_at = now_ms() + s->deadline_ms;
}

void read_signals(struct sup *s) {
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
