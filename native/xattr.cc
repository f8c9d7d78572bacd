// Reading extended attributes (Node has no API for them); the l* calls never follow symlinks.
// Ondine only reads them (the builder records a tree's xattrs), so nothing here writes one.
// Whether ENODATA/ENOTSUP are errors is decided in TypeScript.
#include <sys/xattr.h>

#include <cerrno>
#include <string>
#include <vector>

#include "errors.h"

namespace ondine {
namespace {

// The attribute may grow between the size probe and the read: retry a few times on ERANGE.
constexpr int kAttempts = 8;

Napi::Value List(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, 0, "path");
  std::vector<char> buf;
  ssize_t n = -1;
  for (int attempt = 0; attempt < kAttempts; attempt++) {
    ssize_t size = llistxattr(path.c_str(), nullptr, 0);
    if (size < 0) ThrowErrno(env, errno, "llistxattr", path);
    if (size == 0) return Napi::Array::New(env, 0);
    buf.resize(static_cast<size_t>(size));
    n = llistxattr(path.c_str(), buf.data(), buf.size());
    if (n >= 0 || errno != ERANGE) break;
  }
  if (n < 0) ThrowErrno(env, errno, "llistxattr", path);
  Napi::Array names = Napi::Array::New(env);
  uint32_t count = 0;
  for (size_t start = 0; start < static_cast<size_t>(n);) {
    size_t end = start;
    while (end < static_cast<size_t>(n) && buf[end] != '\0') end++;
    if (end > start) names.Set(count++, Napi::String::New(env, buf.data() + start, end - start));
    start = end + 1;
  }
  return names;
}

Napi::Value Get(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, 0, "path");
  std::string name = StringArg(info, 1, "name");
  std::vector<uint8_t> buf;
  ssize_t n = -1;
  for (int attempt = 0; attempt < kAttempts; attempt++) {
    ssize_t size = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (size < 0) ThrowErrno(env, errno, "lgetxattr", path);
    if (size == 0) return Napi::Buffer<uint8_t>::New(env, 0);
    buf.resize(static_cast<size_t>(size));
    n = lgetxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
    if (n >= 0 || errno != ERANGE) break;
  }
  if (n < 0) ThrowErrno(env, errno, "lgetxattr", path);
  return Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n));
}

}  // namespace

void InitXattr(Napi::Env env, Napi::Object exports) {
  exports.Set("llistxattr", Napi::Function::New(env, List, "llistxattr"));
  exports.Set("lgetxattr", Napi::Function::New(env, Get, "lgetxattr"));
}

}  // namespace ondine
