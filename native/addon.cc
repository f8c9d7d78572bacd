// Module table of the ondine addon: thin syscall wrappers with no policy. Each section
// (memory, lz4, xattr, fdio, mount, cachefiles, poller, fanotify, fdpass, inotify) lives in its own
// file; this file only wires them and publishes the kernel's constants from the headers.
#include <napi.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <linux/openat2.h>
#include <sys/mount.h>

#include "errors.h"

// Newer than Debian bookworm's headers (Linux 6.1); numbers from the 6.14+ uapi.
#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#ifndef FAN_REPORT_FD_ERROR
#define FAN_REPORT_FD_ERROR 0x00002000
#endif
#ifndef FAN_EVENT_INFO_TYPE_RANGE
#define FAN_EVENT_INFO_TYPE_RANGE 6
#endif
#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif

namespace ondine {
namespace {

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) ThrowType(env, "error class must be a constructor");
  Data(env)->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  auto put = [&](const char* name, double value) { c.Set(name, Napi::Number::New(env, value)); };
#define C(name) put(#name, static_cast<double>(name))
  C(MS_RDONLY); C(MS_NOSUID); C(MS_NODEV); C(MS_NOEXEC); C(MS_SYNCHRONOUS); C(MS_REMOUNT);
  C(MS_MANDLOCK); C(MS_DIRSYNC); C(MS_NOSYMFOLLOW); C(MS_NOATIME); C(MS_NODIRATIME);
  C(MS_BIND); C(MS_MOVE); C(MS_REC); C(MS_SILENT); C(MS_POSIXACL); C(MS_UNBINDABLE);
  C(MS_PRIVATE); C(MS_SLAVE); C(MS_SHARED); C(MS_RELATIME); C(MS_I_VERSION);
  C(MS_STRICTATIME); C(MS_LAZYTIME);
  C(MNT_FORCE); C(MNT_DETACH); C(MNT_EXPIRE); C(UMOUNT_NOFOLLOW);
  C(FAN_CLOEXEC); C(FAN_NONBLOCK); C(FAN_CLASS_NOTIF); C(FAN_CLASS_CONTENT);
  C(FAN_CLASS_PRE_CONTENT); C(FAN_UNLIMITED_QUEUE); C(FAN_UNLIMITED_MARKS);
  C(FAN_ENABLE_AUDIT); C(FAN_REPORT_TID); C(FAN_REPORT_FID); C(FAN_REPORT_DIR_FID);
  C(FAN_REPORT_NAME); C(FAN_REPORT_FD_ERROR);
  C(FAN_MARK_ADD); C(FAN_MARK_REMOVE); C(FAN_MARK_DONT_FOLLOW); C(FAN_MARK_ONLYDIR);
  C(FAN_MARK_MOUNT); C(FAN_MARK_FILESYSTEM); C(FAN_MARK_IGNORED_MASK);
  C(FAN_MARK_IGNORED_SURV_MODIFY); C(FAN_MARK_FLUSH); C(FAN_MARK_EVICTABLE);
  C(FAN_MARK_IGNORE); C(FAN_MARK_INODE);
  C(FAN_ACCESS); C(FAN_MODIFY); C(FAN_CLOSE_WRITE); C(FAN_CLOSE_NOWRITE); C(FAN_OPEN);
  C(FAN_Q_OVERFLOW); C(FAN_OPEN_PERM); C(FAN_ACCESS_PERM); C(FAN_OPEN_EXEC_PERM);
  C(FAN_PRE_ACCESS); C(FAN_EVENT_ON_CHILD); C(FAN_ONDIR);
  C(FAN_ALLOW); C(FAN_DENY); C(FAN_NOFD); C(FAN_EVENT_INFO_TYPE_RANGE);
  C(FANOTIFY_METADATA_VERSION);
  C(IN_UNMOUNT); C(IN_IGNORED); C(IN_Q_OVERFLOW); C(IN_DELETE_SELF); C(IN_ONLYDIR);
  C(RESOLVE_NO_XDEV); C(RESOLVE_NO_MAGICLINKS); C(RESOLVE_NO_SYMLINKS); C(RESOLVE_BENEATH);
  C(RESOLVE_IN_ROOT);
#undef C
  put("FAN_EVENT_METADATA_LEN", static_cast<double>(sizeof(struct fanotify_event_metadata)));
  put("FAN_RESPONSE_LEN", static_cast<double>(sizeof(struct fanotify_response)));
  put("CACHEFILES_IOC_READ_COMPLETE", static_cast<double>(_IOW(0x98, 1, int)));
  return c;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("constants", Constants(env));
  InitMemory(env, exports);
  InitLz4(env, exports);
  InitXattr(env, exports);
  InitFdio(env, exports);
  InitMount(env, exports);
  InitCachefiles(env, exports);
  InitPoller(env, exports);
  InitFanotify(env, exports);
  InitFdpass(env, exports);
  InitInotify(env, exports);
  return exports;
}

}  // namespace
}  // namespace ondine

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return ondine::Init(env, exports);
}

NODE_API_MODULE(ondine, InitAddon)
