// pino-compatible JSON lines on stderr, so the daemon's log pipeline reads the supervisor's
// lines like its own: {"level":30,"time":<ms>,"pid":<pid>,"name":"supervisor","msg":"..."}.
#ifndef ONDINE_SUPERVISOR_LOG_H
#define ONDINE_SUPERVISOR_LOG_H

enum { LOG_DEBUG = 20, LOG_INFO = 30, LOG_WARN = 40, LOG_ERROR = 50 };

// `fields` is a printf format of extra members without the leading comma, e.g.
// "\"workerPid\":%d,\"code\":%d"; NULL or "" for none. String members must be made safe
// with log_json_string first.
void log_line(int level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

// Writes `s` as a JSON string literal (quotes included) into out; returns out.
const char *log_json_string(char *out, unsigned long size, const char *s);

#endif
