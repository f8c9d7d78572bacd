// FdPoller: a libuv uv_poll_t watching one fd for readability on the JS thread's own loop,
// so waiting for /dev/cachefiles or fanotify messages neither spins nor blocks a thread.
// The JS callback is expected to read until the fd reports nothing pending (level
// triggered: an undrained fd simply fires again).
//
// Lifetime: the uv handle lives in a separate heap block (PollState) freed by uv_close's
// callback, because the JS wrapper may be collected before libuv is done with the handle.
// While polling, the wrapper holds a strong reference to itself, like an open socket. An
// async cleanup hook closes a still-open handle when a worker thread's environment exits.
#include <uv.h>

#include <cerrno>
#include <vector>

#include "errors.h"

namespace ondine {
namespace {

class FdPollerWrap;

struct PollState {
  uv_poll_t handle;
  FdPollerWrap* owner = nullptr;
  napi_async_cleanup_hook_handle hook = nullptr;
  bool closing = false;
};

void OnClosed(uv_handle_t* handle);

// Starts closing the handle once; OnClosed frees the state and releases the cleanup hook.
void CloseState(PollState* state) {
  if (state->closing) return;
  state->closing = true;
  uv_poll_stop(&state->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&state->handle), OnClosed);
}

void OnEnvExit(napi_async_cleanup_hook_handle, void* arg) {
  CloseState(static_cast<PollState*>(arg));
}

class FdPollerWrap : public Napi::ObjectWrap<FdPollerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdPoller",
                       {InstanceMethod<&FdPollerWrap::Close>("close"),
                        InstanceMethod<&FdPollerWrap::RefHandle>("ref"),
                        InstanceMethod<&FdPollerWrap::UnrefHandle>("unref"),
                        InstanceAccessor<&FdPollerWrap::Closed>("closed")});
  }

  explicit FdPollerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdPollerWrap>(info) {
    Napi::Env env = info.Env();
    int fd = FdArg(info, 0);
    if (!info[1].IsFunction()) ThrowType(env, "onReadable must be a function");

    uv_loop_t* loop = nullptr;
    NAPI_THROW_IF_FAILED_VOID(env, napi_get_uv_event_loop(env, &loop));
    auto* state = new PollState();
    int r = uv_poll_init(loop, &state->handle, fd);
    if (r != 0) {
      delete state;  // never registered with the loop, so no uv_close needed
      ThrowErrno(env, -r, "uv_poll_init");
    }
    state->handle.data = state;
    state->owner = this;
    state_ = state;
    r = uv_poll_start(&state->handle, UV_READABLE, OnPoll);
    if (r != 0) {
      state->owner = nullptr;  // this object is never constructed; OnClosed must not touch it
      state_ = nullptr;
      CloseState(state);
      ThrowErrno(env, -r, "uv_poll_start");
    }
    napi_add_async_cleanup_hook(env, OnEnvExit, state, &state->hook);

    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    NAPI_THROW_IF_FAILED_VOID(
        env, napi_async_init(env, info.This(), Napi::String::New(env, "ondine.FdPoller"),
                             &context_));
    Ref();  // keep this object (and so the callback) alive while the fd is watched
  }

  ~FdPollerWrap() override {
    if (state_ != nullptr) {
      state_->owner = nullptr;
      CloseState(state_);
    }
  }

  void Detach() { state_ = nullptr; }

  // Called from the loop; a negative status is a poll error (e.g. EBADF): report it once
  // and stop, since libuv would otherwise keep failing.
  void Dispatch(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    std::vector<napi_value> args;
    if (status < 0) {
      args.push_back(ErrnoError(env, -status, "uv_poll").Value());
      Stop();
    }
    try {
      callback_.MakeCallback(Value(), args, context_);
    } catch (const Napi::Error& e) {
      // No JS frame to throw into: hand it to process 'uncaughtException' like an EventEmitter.
      napi_fatal_exception(env, e.Value());
    }
  }

 private:
  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* state = static_cast<PollState*>(handle->data);
    if (state->owner != nullptr && !state->closing) state->owner->Dispatch(status);
  }

  // Stops watching; safe to call more than once and from inside the callback.
  void Stop() {
    if (state_ == nullptr || state_->closing) return;
    CloseState(state_);
    if (context_ != nullptr) {
      napi_async_destroy(Env(), context_);
      context_ = nullptr;
    }
    Unref();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  Napi::Value RefHandle(const Napi::CallbackInfo& info) {
    if (state_ != nullptr && !state_->closing) uv_ref(reinterpret_cast<uv_handle_t*>(&state_->handle));
    return info.Env().Undefined();
  }

  Napi::Value UnrefHandle(const Napi::CallbackInfo& info) {
    if (state_ != nullptr && !state_->closing) uv_unref(reinterpret_cast<uv_handle_t*>(&state_->handle));
    return info.Env().Undefined();
  }

  Napi::Value Closed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), state_ == nullptr || state_->closing);
  }

  PollState* state_ = nullptr;
  Napi::FunctionReference callback_;
  napi_async_context context_ = nullptr;
};

void OnClosed(uv_handle_t* handle) {
  auto* state = static_cast<PollState*>(handle->data);
  if (state->owner != nullptr) state->owner->Detach();
  if (state->hook != nullptr) napi_remove_async_cleanup_hook(state->hook);
  delete state;
}

}  // namespace

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("FdPoller", FdPollerWrap::Define(env));
}

}  // namespace ondine
