// Shared helpers of the addon: errno -> NativeError, argument unpacking, promise workers.
// Policy (what an errno means to Ondine) lives in TypeScript; this only reports facts.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ondine {

// Per-environment state (main thread and each worker thread get their own).
struct AddonData {
  Napi::FunctionReference errorClass;  // NativeError, handed in by src/native/binding.ts
};

AddonData* Data(Napi::Env env);

// Builds an instance of the registered NativeError class (a plain Error with the same
// fields if none is registered): message "<CODE>: <description>, <syscall> '<path>'".
// A non-empty detail replaces the strerror description; an empty path is left out.
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall,
                       const std::string& path = std::string(),
                       const std::string& detail = std::string());

[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall,
                             const std::string& path = std::string());

// strerror text, e.g. "Device or resource busy", for details that add context.
std::string Describe(int err);

// The TS layer validates first; these checks only keep a raw caller from crashing the process.
[[noreturn]] void ThrowType(Napi::Env env, const std::string& message);
int FdArg(const Napi::CallbackInfo& info, size_t i);
int64_t IntArg(const Napi::CallbackInfo& info, size_t i, int64_t min, int64_t max,
               const char* what);
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what);
// null/undefined -> false and *out untouched.
bool OptionalStringArg(const Napi::CallbackInfo& info, size_t i, const char* what,
                       std::string* out);
// A path given as a string (UTF-8) or as raw bytes (Uint8Array), without NUL bytes.
std::string PathArg(const Napi::CallbackInfo& info, size_t i, const char* what);
Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what);

// A promise-returning job for the libuv thread pool. Execute() runs off the JS thread and
// must not touch napi values; it reports failure through Fail(). Inputs that live in JS
// memory are pinned with Keep() until the job has finished.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Start() {
    Queue();
    return deferred_.Promise();
  }

 protected:
  void Keep(Napi::Object value) { kept_.push_back(Napi::Persistent(value)); }
  void Fail(int err, const char* syscall, std::string detail = std::string(),
            std::string path = std::string()) {
    err_ = err;
    syscall_ = syscall;
    detail_ = std::move(detail);
    path_ = std::move(path);
  }
  virtual Napi::Value Result(Napi::Env env) = 0;

 private:
  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      deferred_.Reject(ErrnoError(env, err_, syscall_, path_, detail_).Value());
    } else {
      deferred_.Resolve(Result(env));
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> kept_;
  int err_ = 0;
  std::string syscall_;
  std::string detail_;
  std::string path_;
};

// Module sections; each adds its functions to the exports object.
void InitMemory(Napi::Env env, Napi::Object exports);
void InitLz4(Napi::Env env, Napi::Object exports);
void InitXattr(Napi::Env env, Napi::Object exports);
void InitFdio(Napi::Env env, Napi::Object exports);
void InitMount(Napi::Env env, Napi::Object exports);
void InitCachefiles(Napi::Env env, Napi::Object exports);
void InitPoller(Napi::Env env, Napi::Object exports);
void InitFanotify(Napi::Env env, Napi::Object exports);
void InitFdpass(Napi::Env env, Napi::Object exports);
void InitInotify(Napi::Env env, Napi::Object exports);

}  // namespace ondine
