// inotify_init1/inotify_add_watch/inotify_rm_watch, and flock: the daemon watches the root of
// each EROFS mount for IN_UNMOUNT (sent when the superblock dies, which Node's fs.watch does
// not report as such) and holds one lock per socket. Events are read with devRead under an
// FdPoller; parsing them is pure TypeScript in src/kernel.
#include <sys/file.h>
#include <sys/inotify.h>

#include <cerrno>
#include <string>

#include "errors.h"

namespace ondine {
namespace {

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "inotify_init1");
  return Napi::Number::New(env, fd);
}

Napi::Value AddWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  std::string path = PathArg(info, 1, "path");
  uint32_t mask = static_cast<uint32_t>(IntArg(info, 2, 1, 0xffffffffLL, "mask"));
  int wd = inotify_add_watch(fd, path.c_str(), mask);
  if (wd < 0) ThrowErrno(env, errno, "inotify_add_watch", path);
  return Napi::Number::New(env, wd);
}

Napi::Value RmWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  int wd = static_cast<int>(IntArg(info, 1, 0, INT32_MAX, "wd"));
  if (inotify_rm_watch(fd, wd) != 0) ThrowErrno(env, errno, "inotify_rm_watch");
  return env.Undefined();
}

// flock(fd, LOCK_EX | LOCK_NB) or LOCK_UN: true when taken, false when another open file
// description holds it (EWOULDBLOCK), an error otherwise.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  bool unlock = info[1].ToBoolean().Value();
  int r;
  do {
    r = flock(fd, unlock ? LOCK_UN : LOCK_EX | LOCK_NB);
  } while (r != 0 && errno == EINTR);
  if (r != 0) {
    if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, "flock");
  }
  return Napi::Boolean::New(env, true);
}

}  // namespace

void InitInotify(Napi::Env env, Napi::Object exports) {
  exports.Set("inotifyInit", Napi::Function::New(env, Init, "inotifyInit"));
  exports.Set("inotifyAddWatch", Napi::Function::New(env, AddWatch, "inotifyAddWatch"));
  exports.Set("inotifyRmWatch", Napi::Function::New(env, RmWatch, "inotifyRmWatch"));
  exports.Set("flockExclusive", Napi::Function::New(env, Flock, "flockExclusive"));
}

}  // namespace ondine
