{
  "targets": [
    {
      "target_name": "ondine",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/memory.cc",
        "native/lz4.cc",
        "native/xattr.cc",
        "native/fdio.cc",
        "native/mount.cc",
        "native/cachefiles.cc",
        "native/poller.cc",
        "native/fanotify.cc",
        "native/fdpass.cc",
        "native/inotify.cc"
      ],
      "include_dirs": [ "<!(node -p \"require('node-addon-api').include_dir\")" ],
      "defines": [ "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS" ],
      "cflags!": [ "-fno-exceptions" ],
      "cflags_cc!": [ "-fno-exceptions" ],
      "cflags_cc": [ "-std=c++17", "-O2", "-Wall", "-Wextra" ],
      "libraries": [ "-llz4" ]
    },
    {
      "target_name": "ondine-supervisor",
      "type": "executable",
      "sources": [
        "native/supervisor/supervisor.c",
        "native/supervisor/group.c",
        "native/supervisor/link.c",
        "native/supervisor/worker.c",
        "native/supervisor/pending.c",
        "native/supervisor/wire.c",
        "native/supervisor/hints.c",
        "native/supervisor/log.c"
      ],
      "cflags": [ "-std=c11", "-O2", "-Wall", "-Wextra" ]
    }
  ]
}
