// The datagram link to ondine-supervisor: SEQPACKET messages that may carry one fd
// (SCM_RIGHTS), e.g. a fanotify event's. The supervisor makes the socketpair in production;
// Socketpair lets tests stand in for its end.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>

#include "errors.h"

namespace ondine {
namespace {

// Room for more fds than one, so a sender's extra ones are received (and closed), not left
// to truncation.
constexpr int kMaxFds = 4;

Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool nonBlocking = info[0].ToBoolean().Value();
  int fds[2];
  int type = SOCK_SEQPACKET | SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0);
  if (socketpair(AF_UNIX, type, 0, fds) != 0) {
    ThrowErrno(env, errno, "socketpair");
  }
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, Napi::Number::New(env, fds[0]));
  pair.Set(1u, Napi::Number::New(env, fds[1]));
  return pair;
}

// One datagram of `buf`, with one fd (SCM_RIGHTS) when fd >= 0. false: it would block.
Napi::Value SendMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = FdArg(info, 0);
  Napi::Uint8Array buf = BytesArg(info, 1, "buf");
  int fd = static_cast<int>(IntArg(info, 2, -1, INT32_MAX, "fd"));
  struct iovec iov;
  iov.iov_base = buf.Data();
  iov.iov_len = buf.ByteLength();
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  std::memset(control, 0, sizeof(control));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, "sendmsg");
  }
  return Napi::Boolean::New(env, true);
}

// One datagram into `buf`: {length, fd} (fd -1 if none came), {-1, -1} when it would block.
Napi::Value RecvMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = FdArg(info, 0);
  Napi::Uint8Array buf = BytesArg(info, 1, "buf");
  struct iovec iov;
  iov.iov_base = buf.Data();
  iov.iov_len = buf.ByteLength();
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  Napi::Object result = Napi::Object::New(env);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) ThrowErrno(env, errno, "recvmsg");
    result.Set("length", Napi::Number::New(env, -1));
    result.Set("fd", Napi::Number::New(env, -1));
    return result;
  }
  int received[kMaxFds];
  int count = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t j = 0; j < k && count < kMaxFds; j++) {
      std::memcpy(&received[count++], CMSG_DATA(c) + j * sizeof(int), sizeof(int));
    }
  }
  auto refuse = [&](int err, const std::string& detail) {
    for (int j = 0; j < count; j++) close(received[j]);
    throw ErrnoError(env, err, "recvmsg", std::string(), detail);
  };
  if (n == 0 && count == 0) refuse(ECONNRESET, "peer closed the socket");
  if ((msg.msg_flags & MSG_TRUNC) != 0) {
    refuse(EMSGSIZE, "datagram longer than the " + std::to_string(buf.ByteLength()) +
                         "-byte buffer");
  }
  if (count > 1 || (msg.msg_flags & MSG_CTRUNC) != 0) {
    refuse(EPROTO, "expected at most one file descriptor, got " + std::to_string(count) +
                       ((msg.msg_flags & MSG_CTRUNC) != 0 ? " (control data truncated)" : ""));
  }
  result.Set("length", Napi::Number::New(env, static_cast<double>(n)));
  result.Set("fd", Napi::Number::New(env, count == 1 ? received[0] : -1));
  return result;
}

}  // namespace

void InitFdpass(Napi::Env env, Napi::Object exports) {
  exports.Set("socketpair", Napi::Function::New(env, Socketpair, "socketpair"));
  exports.Set("sendMessage", Napi::Function::New(env, SendMessage, "sendMessage"));
  exports.Set("recvMessage", Napi::Function::New(env, RecvMessage, "recvMessage"));
}

}  // namespace ondine
