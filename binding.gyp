{
  # The native packet engine (bench generator, receiver, forwarder). Built by
  # scripts/setup.d/20-native.sh; loaded only by lib/native/index.ts through node-gyp-build.
  "targets": [
    {
      "target_name": "c4v_native",
      "sources": ["native/src/engine.c", "native/src/fastsrtp.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lsrtp2", "-lcrypto", "-lpthread"]
    }
  ]
}
