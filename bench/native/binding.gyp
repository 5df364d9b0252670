{
  # The benchmark's native packet engine (generator, receiver, forwarder). It lives under bench/,
  # not at the package root: a binding.gyp at the root makes npm run an implicit `node-gyp rebuild`
  # during every `npm ci` / `npm install` (before the set-up has installed libsrtp2-dev) and in
  # every consumer's install. Built by scripts/setup.d/20-native.sh; loaded only by
  # bench/native/index.ts through node-gyp-build.
  "targets": [
    {
      "target_name": "c4v_native",
      "sources": ["src/engine.c", "src/fastsrtp.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lsrtp2", "-lcrypto", "-lpthread"]
    }
  ]
}
