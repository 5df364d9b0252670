// c4v native packet engine: batched UDP (sendmmsg/recvmmsg), RTP packets with a benchmark payload
// header, SRTP with libsrtp2, an open-loop fixed-rate sender, a delay-recording receiver and a
// minimal forwarder. Every long-running part is a pthread of its own so that the JavaScript event
// loop (and its garbage collector) can neither delay a packet nor hide a delay.
//
// Loaded only by lib/native/index.ts, which validates arguments first and maps the errors thrown
// here (err.code = NATIVE_*) to the library's coded errors.
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <srtp2/srtp.h>

#include "fastsrtp.h"

#define MAX_PACKET 1500            // the largest RTP packet we build or accept (before SRTP)
#define SRTP_TRAILER 16            // room for the SRTP auth tag / GCM tag
#define BATCH 64                   // datagrams per recvmmsg / sendmmsg call
#define MAGIC 0x43345642u          // "C4VB": marks the benchmark payload header
#define HDR_LEN 20                 // magic u32, stream id u32, sequence u32, scheduled time u64 ns
#define MAX_SCAN 32                // the header may follow a codec prefix of up to this many bytes

// ------------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------------

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static napi_value throw_coded(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) return throw_coded(env, "INTERNAL", "N-API call failed: " #call);       \
  } while (0)

static int get_str(napi_env env, napi_value v, char *buf, size_t len) {
  size_t out;
  return napi_get_value_string_utf8(env, v, buf, len, &out) == napi_ok ? 0 : -1;
}

static napi_value prop(napi_env env, napi_value obj, const char *name) {
  napi_value v;
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return NULL;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return NULL;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) return NULL;
  return v;
}

static double num_prop(napi_env env, napi_value obj, const char *name, double dflt) {
  napi_value v = prop(env, obj, name);
  double d;
  if (!v || napi_get_value_double(env, v, &d) != napi_ok) return dflt;
  return d;
}

static void set_num(napi_env env, napi_value obj, const char *name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, obj, name, v);
}

// Parses a numeric IPv4 or IPv6 address; 0 on success.
static int parse_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  if (port < 0 || port > 65535) return -1;
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof(*a4);
    return 0;
  }
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*a6);
    return 0;
  }
  return -1;
}

static napi_value get_addr_arg(napi_env env, napi_value host_v, napi_value port_v, struct sockaddr_storage *ss,
                               socklen_t *len) {
  char host[64];
  double port = -1;
  if (get_str(env, host_v, host, sizeof host) != 0 || napi_get_value_double(env, port_v, &port) != napi_ok ||
      port != (int)port || parse_addr(host, (int)port, ss, len) != 0) {
    return throw_coded(env, "NATIVE_BAD_ADDRESS", "not a numeric IP address and port 0-65535");
  }
  return (napi_value)1;  // any non-NULL marks success
}

// ------------------------------------------------------------------------------------------------
// SRTP
// ------------------------------------------------------------------------------------------------

static pthread_once_t srtp_once = PTHREAD_ONCE_INIT;
static void srtp_init_once(void) { srtp_init(); }

// Key lengths (master key + salt) per mediasoup crypto suite name.
static int suite_policy(const char *suite, srtp_crypto_policy_t *p, int *key_len) {
  if (strcmp(suite, "AES_CM_128_HMAC_SHA1_80") == 0) {
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(p);
    *key_len = 30;
  } else if (strcmp(suite, "AES_CM_128_HMAC_SHA1_32") == 0) {
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(p);
    *key_len = 30;
  } else if (strcmp(suite, "AEAD_AES_128_GCM") == 0) {
    srtp_crypto_policy_set_aes_gcm_128_16_auth(p);
    *key_len = 28;
  } else if (strcmp(suite, "AEAD_AES_256_GCM") == 0) {
    srtp_crypto_policy_set_aes_gcm_256_16_auth(p);
    *key_len = 44;
  } else {
    return -1;
  }
  return 0;
}

typedef struct {
  uint32_t ssrc;    // 0 with any=1
  int any;          // ssrc_any_inbound / ssrc_any_outbound
  char suite[32];
  uint8_t key[64];
  int key_len;
} key_spec;

// Builds one session from specs; NULL with *err set on failure.
static srtp_t make_session(key_spec *specs, size_t n, int outbound, const char **err) {
  pthread_once(&srtp_once, srtp_init_once);
  srtp_policy_t *pol = calloc(n, sizeof(srtp_policy_t));
  if (!pol) {
    *err = "out of memory";
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    int need = 0;
    if (suite_policy(specs[i].suite, &pol[i].rtp, &need) != 0) {
      free(pol);
      *err = "unknown SRTP crypto suite";
      return NULL;
    }
    if (specs[i].key_len != need) {
      free(pol);
      *err = "SRTP key has the wrong length for its crypto suite";
      return NULL;
    }
    suite_policy(specs[i].suite, &pol[i].rtcp, &need);
    if (specs[i].any) {
      pol[i].ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    } else {
      pol[i].ssrc.type = ssrc_specific;
      pol[i].ssrc.value = specs[i].ssrc;
    }
    pol[i].key = specs[i].key;
    pol[i].window_size = 4096;
    pol[i].allow_repeat_tx = 1;
    pol[i].next = i + 1 < n ? &pol[i + 1] : NULL;
  }
  srtp_t session = NULL;
  srtp_err_status_t st = srtp_create(&session, pol);
  free(pol);
  if (st != srtp_err_status_ok) {
    *err = "libsrtp refused the key";
    return NULL;
  }
  return session;
}

// Reads { suite, key: Buffer, ssrc? } into a key_spec; NULL (after throwing) on bad input.
static napi_value read_key_spec(napi_env env, napi_value obj, key_spec *ks) {
  memset(ks, 0, sizeof *ks);
  napi_value suite_v = prop(env, obj, "suite"), key_v = prop(env, obj, "key"), ssrc_v = prop(env, obj, "ssrc");
  void *data;
  size_t len;
  bool isbuf = false;
  if (!suite_v || get_str(env, suite_v, ks->suite, sizeof ks->suite) != 0 || !key_v ||
      napi_is_buffer(env, key_v, &isbuf) != napi_ok || !isbuf ||
      napi_get_buffer_info(env, key_v, &data, &len) != napi_ok || len > sizeof ks->key) {
    return throw_coded(env, "NATIVE_BAD_SRTP_KEY", "an SRTP key needs a crypto suite and a key Buffer");
  }
  int need;
  srtp_crypto_policy_t p;
  if (suite_policy(ks->suite, &p, &need) != 0 || (int)len != need) {
    return throw_coded(env, "NATIVE_BAD_SRTP_KEY", "SRTP key length does not match the crypto suite");
  }
  memcpy(ks->key, data, len);
  ks->key_len = (int)len;
  double ssrc;
  if (ssrc_v && napi_get_value_double(env, ssrc_v, &ssrc) == napi_ok) {
    ks->ssrc = (uint32_t)ssrc;
  } else {
    ks->any = 1;
  }
  return (napi_value)1;
}

static void srtp_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  srtp_dealloc((srtp_t)data);
}

// srtpSession({ suite, key }, outbound: boolean) -> External
static napi_value js_srtp_session(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  key_spec ks;
  if (argc < 2 || !read_key_spec(env, argv[0], &ks)) return NULL;
  ks.any = 1;
  bool outbound = false;
  napi_get_value_bool(env, argv[1], &outbound);
  const char *err = NULL;
  srtp_t s = make_session(&ks, 1, outbound, &err);
  if (!s) return throw_coded(env, "NATIVE_BAD_SRTP_KEY", err);
  napi_value ext;
  CHECK(napi_create_external(env, s, srtp_finalize, NULL, &ext));
  return ext;
}

// srtpProtect(session, packet: Buffer) / srtpUnprotect(session, packet) -> Buffer (a copy)
static napi_value srtp_apply(napi_env env, napi_callback_info info, int protect) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  srtp_t s;
  void *data;
  size_t len;
  if (argc < 2 || napi_get_value_external(env, argv[0], (void **)&s) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    return throw_coded(env, "INVALID_ARGUMENT", "expected (session, Buffer)");
  }
  if (len > MAX_PACKET + (protect ? 0 : SRTP_TRAILER)) {
    return throw_coded(env, "NATIVE_PACKET_TOO_LARGE", "packet larger than 1500 bytes");
  }
  uint8_t buf[MAX_PACKET + SRTP_TRAILER];
  memcpy(buf, data, len);
  int n = (int)len;
  int rtcp = len >= 2 && buf[1] >= 192 && buf[1] <= 223;
  srtp_err_status_t st;
  if (protect) {
    st = rtcp ? srtp_protect_rtcp(s, buf, &n) : srtp_protect(s, buf, &n);
  } else {
    st = rtcp ? srtp_unprotect_rtcp(s, buf, &n) : srtp_unprotect(s, buf, &n);
  }
  if (st != srtp_err_status_ok) {
    char msg[64];
    snprintf(msg, sizeof msg, "libsrtp %s failed with status %d", protect ? "protect" : "unprotect", (int)st);
    return throw_coded(env, protect ? "INTERNAL" : "NATIVE_BAD_SRTP_KEY", msg);
  }
  napi_value out;
  void *odata;
  CHECK(napi_create_buffer_copy(env, (size_t)n, buf, &odata, &out));
  return out;
}
static napi_value js_srtp_protect(napi_env env, napi_callback_info info) { return srtp_apply(env, info, 1); }
static napi_value js_srtp_unprotect(napi_env env, napi_callback_info info) { return srtp_apply(env, info, 0); }

// ------------------------------------------------------------------------------------------------
// sockets and batched I/O
// ------------------------------------------------------------------------------------------------

// udpOpen(host, port) -> { fd, port }
static napi_value js_udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_storage ss;
  socklen_t len;
  if (argc < 2 || !get_addr_arg(env, argv[0], argv[1], &ss, &len)) return NULL;
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_coded(env, "INTERNAL", strerror(errno));
  // Large buffers: a fan-out of 2000 copies arrives in bursts of thousands of datagrams.
  // SO_*BUFFORCE passes net.core.rmem_max when we have CAP_NET_ADMIN; otherwise the plain option
  // gets what the system allows.
  int sz = 32 * 1024 * 1024;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) != 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    int e = errno;
    close(fd);
    return throw_coded(env, e == EADDRNOTAVAIL ? "NATIVE_BAD_ADDRESS" : "INTERNAL", strerror(e));
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &blen);
  int port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                               : ((struct sockaddr_in6 *)&bound)->sin6_port);
  napi_value out;
  CHECK(napi_create_object(env, &out));
  set_num(env, out, "fd", fd);
  set_num(env, out, "port", port);
  return out;
}

static napi_value js_udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_double(env, argv[0], &fd) != napi_ok) return NULL;
  close((int)fd);
  return NULL;
}

// udpSend(fd, host, port, packets: Buffer[]) -> number sent (sendmmsg in batches)
static napi_value js_udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double fd;
  struct sockaddr_storage ss;
  socklen_t alen;
  if (argc < 4 || napi_get_value_double(env, argv[0], &fd) != napi_ok) {
    return throw_coded(env, "INVALID_ARGUMENT", "expected (fd, host, port, packets)");
  }
  if (!get_addr_arg(env, argv[1], argv[2], &ss, &alen)) return NULL;
  uint32_t n;
  if (napi_get_array_length(env, argv[3], &n) != napi_ok) return throw_coded(env, "INVALID_ARGUMENT", "packets must be an array");
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  uint32_t sent = 0;
  for (uint32_t base = 0; base < n; base += BATCH) {
    uint32_t k = n - base < BATCH ? n - base : BATCH;
    for (uint32_t i = 0; i < k; i++) {
      napi_value el;
      void *data;
      size_t len;
      napi_get_element(env, argv[3], base + i, &el);
      if (napi_get_buffer_info(env, el, &data, &len) != napi_ok) return throw_coded(env, "INVALID_ARGUMENT", "packets must be Buffers");
      if (len > MAX_PACKET + SRTP_TRAILER) return throw_coded(env, "NATIVE_PACKET_TOO_LARGE", "packet larger than 1500 bytes");
      iov[i].iov_base = data;
      iov[i].iov_len = len;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &ss;
      msgs[i].msg_hdr.msg_namelen = alen;
    }
    int r = sendmmsg((int)fd, msgs, k, 0);
    if (r < 0) {
      if (errno == EAGAIN) break;
      return throw_coded(env, errno == EINVAL || errno == EAFNOSUPPORT ? "NATIVE_BAD_ADDRESS" : "INTERNAL", strerror(errno));
    }
    sent += (uint32_t)r;
    if ((uint32_t)r < k) break;
  }
  napi_value out;
  CHECK(napi_create_uint32(env, sent, &out));
  return out;
}

// udpRecv(fd, max) -> Buffer[] (what is queued now, without waiting)
static napi_value js_udp_recv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  double fd, max = BATCH;
  if (argc < 1 || napi_get_value_double(env, argv[0], &fd) != napi_ok) return throw_coded(env, "INVALID_ARGUMENT", "expected (fd, max)");
  if (argc > 1) napi_get_value_double(env, argv[1], &max);
  napi_value arr;
  CHECK(napi_create_array(env, &arr));
  uint8_t bufs[BATCH][MAX_PACKET + SRTP_TRAILER];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  uint32_t total = 0;
  while (total < (uint32_t)max) {
    uint32_t k = (uint32_t)max - total < BATCH ? (uint32_t)max - total : BATCH;
    memset(msgs, 0, sizeof(struct mmsghdr) * k);
    for (uint32_t i = 0; i < k; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = sizeof bufs[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r = recvmmsg((int)fd, msgs, k, MSG_DONTWAIT, NULL);
    if (r <= 0) break;
    for (int i = 0; i < r; i++) {
      napi_value b;
      void *d;
      napi_create_buffer_copy(env, msgs[i].msg_len, bufs[i], &d, &b);
      napi_set_element(env, arr, total++, b);
    }
    if ((uint32_t)r < k) break;
  }
  return arr;
}

// ------------------------------------------------------------------------------------------------
// RTP
// ------------------------------------------------------------------------------------------------

typedef struct {
  uint8_t pt;
  uint32_t ssrc;
  uint32_t clock_rate;
  uint32_t stream_id;
  int size;                 // total RTP packet size before SRTP
  uint8_t prefix[MAX_SCAN]; // codec payload prefix (e.g. a VP8 descriptor)
  int prefix_len;
  uint8_t key_prefix[MAX_SCAN];
  int key_prefix_len;
} rtp_spec;

// Writes one RTP packet; returns its length.
static int build_rtp(uint8_t *out, const rtp_spec *s, uint16_t rtp_seq, uint32_t rtp_ts, int marker, uint32_t seq,
                     int64_t sched_ns, int key) {
  out[0] = 0x80;
  out[1] = (uint8_t)((marker ? 0x80 : 0) | (s->pt & 0x7f));
  out[2] = rtp_seq >> 8;
  out[3] = rtp_seq & 0xff;
  uint32_t v = htonl(rtp_ts);
  memcpy(out + 4, &v, 4);
  v = htonl(s->ssrc);
  memcpy(out + 8, &v, 4);
  int off = 12;
  const uint8_t *pre = key ? s->key_prefix : s->prefix;
  int plen = key ? s->key_prefix_len : s->prefix_len;
  memcpy(out + off, pre, (size_t)plen);
  off += plen;
  v = htonl(MAGIC);
  memcpy(out + off, &v, 4);
  v = htonl(s->stream_id);
  memcpy(out + off + 4, &v, 4);
  v = htonl(seq);
  memcpy(out + off + 8, &v, 4);
  uint64_t t = (uint64_t)sched_ns;
  uint32_t hi = htonl((uint32_t)(t >> 32)), lo = htonl((uint32_t)t);
  memcpy(out + off + 12, &hi, 4);
  memcpy(out + off + 16, &lo, 4);
  off += HDR_LEN;
  int size = s->size > off ? s->size : off;
  // Filler that is not all zeros, so that nothing on the way can compress or skip it.
  for (int i = off; i < size; i++) out[i] = (uint8_t)(i * 31 + seq);
  return size;
}

static napi_value read_rtp_spec(napi_env env, napi_value o, rtp_spec *s) {
  memset(s, 0, sizeof *s);
  s->pt = (uint8_t)num_prop(env, o, "payloadType", 100);
  s->ssrc = (uint32_t)num_prop(env, o, "ssrc", 1111);
  s->clock_rate = (uint32_t)num_prop(env, o, "clockRate", 48000);
  s->stream_id = (uint32_t)num_prop(env, o, "streamId", 0);
  double size = num_prop(env, o, "size", 120);
  if (size > MAX_PACKET) return throw_coded(env, "NATIVE_PACKET_TOO_LARGE", "packet size over 1500 bytes");
  s->size = (int)size;
  const char *names[2] = {"prefix", "keyPrefix"};
  for (int k = 0; k < 2; k++) {
    napi_value p = prop(env, o, names[k]);
    if (!p) continue;
    void *d;
    size_t len;
    if (napi_get_buffer_info(env, p, &d, &len) != napi_ok || len > MAX_SCAN - 1) {
      return throw_coded(env, "INVALID_ARGUMENT", "prefix must be a Buffer of at most 31 bytes");
    }
    memcpy(k ? s->key_prefix : s->prefix, d, len);
    if (k) s->key_prefix_len = (int)len;
    else s->prefix_len = (int)len;
  }
  if (!prop(env, o, "keyPrefix")) {
    memcpy(s->key_prefix, s->prefix, (size_t)s->prefix_len);
    s->key_prefix_len = s->prefix_len;
  }
  return (napi_value)1;
}

// buildRtp(spec, { rtpSeq, rtpTimestamp, marker, seq, sendTimeNs?, keyFrame? }) -> Buffer
static napi_value js_build_rtp(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  rtp_spec s;
  if (argc < 2 || !read_rtp_spec(env, argv[0], &s)) return NULL;
  uint8_t buf[MAX_PACKET];
  napi_value mv = prop(env, argv[1], "marker"), kv = prop(env, argv[1], "keyFrame");
  bool marker = false, key = false;
  if (mv) napi_get_value_bool(env, mv, &marker);
  if (kv) napi_get_value_bool(env, kv, &key);
  int64_t t = (int64_t)num_prop(env, argv[1], "sendTimeNs", -1);
  if (t < 0) t = now_ns();
  int n = build_rtp(buf, &s, (uint16_t)num_prop(env, argv[1], "rtpSeq", 0), (uint32_t)num_prop(env, argv[1], "rtpTimestamp", 0),
                    marker, (uint32_t)num_prop(env, argv[1], "seq", 0), t, key);
  napi_value out;
  void *d;
  CHECK(napi_create_buffer_copy(env, (size_t)n, buf, &d, &out));
  return out;
}

// nowNs() -> number (CLOCK_MONOTONIC, the clock of every timestamp here)
static napi_value js_now_ns(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_double(env, (double)now_ns(), &out);
  return out;
}

// Finds the benchmark header in an RTP packet (after CSRCs, extensions and a codec prefix).
static const uint8_t *find_header(const uint8_t *p, int len) {
  if (len < 12 || (p[0] >> 6) != 2) return NULL;
  int off = 12 + (p[0] & 0x0f) * 4;
  if (p[0] & 0x10) {
    if (len < off + 4) return NULL;
    off += 4 + ((p[off + 2] << 8) | p[off + 3]) * 4;
  }
  for (int i = 0; i < MAX_SCAN && off + i + HDR_LEN <= len; i++) {
    const uint8_t *h = p + off + i;
    if (h[0] == 0x43 && h[1] == 0x34 && h[2] == 0x56 && h[3] == 0x42) return h;
  }
  return NULL;
}

static uint32_t rd32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }

// ------------------------------------------------------------------------------------------------
// open-loop sender
// ------------------------------------------------------------------------------------------------

typedef struct {
  pthread_t thread;
  int fd;
  struct sockaddr_storage dest;
  socklen_t dest_len;
  rtp_spec rtp;
  double frame_rate;        // frames (bursts) per second
  int packets_per_frame;
  int key_interval;         // frames between key-frame prefixes (0: only frame 0)
  int64_t first;            // index of the first frame (a run continuing a warm-up)
  int64_t count;            // frames to send
  int64_t start_ns;
  srtp_t srtp;
  fast_srtp *fast;          // AES-CM suites: libcrypto (see fastsrtp.h); else srtp
  _Atomic int stop;
  _Atomic int done;
  _Atomic int64_t sent;
  _Atomic int64_t send_errors;
  _Atomic int64_t max_late_ns;
  _Atomic int64_t late_sum_ns;
  _Atomic int64_t protect_ns;  // time spent in srtp_protect (the generator's own SRTP cost)
  int64_t cpu_ns;
  int joined;
} sender_t;

// The generator's threads (sender, receiver) ask for SCHED_FIFO so that a busy machine delays
// their wake-ups less: the generator must not be what the benchmark measures. Without the
// privilege they keep the normal policy; rt_granted tells the report which one it got.
static _Atomic int rt_granted = -1;
static void try_realtime(void) {
  if (getenv("C4V_NO_REALTIME")) {
    atomic_store(&rt_granted, 0);
    return;
  }
  struct sched_param sp = {.sched_priority = 10};
  int ok = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
  atomic_store(&rt_granted, ok);
}

// realtime() -> -1 (not tried yet), 0 (refused) or 1 (generator threads run SCHED_FIFO)
static napi_value js_realtime(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_int32(env, atomic_load(&rt_granted), &out);
  return out;
}

static int64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *sender_main(void *arg) {
  sender_t *s = arg;
  try_realtime();
  int64_t period = (int64_t)(1e9 / s->frame_rate);
  uint32_t seq = (uint32_t)(s->first * s->packets_per_frame);
  uint16_t rtp_seq = (uint16_t)(s->rtp.ssrc * 7 + seq);
  uint32_t ts_step = (uint32_t)(s->rtp.clock_rate / s->frame_rate);
  int ppf = s->packets_per_frame;
  // A whole frame is built (and SRTP-protected) before its scheduled time and only sent at it:
  // the content is known in advance, so the generator's own work never counts as delay.
  typedef uint8_t packet_buf[MAX_PACKET + SRTP_TRAILER];
  packet_buf *bufs = malloc((size_t)ppf * sizeof(packet_buf));
  struct mmsghdr *msgs = calloc((size_t)ppf, sizeof(struct mmsghdr));
  struct iovec *iov = calloc((size_t)ppf, sizeof(struct iovec));
  if (!bufs || !msgs || !iov) {
    atomic_fetch_add(&s->send_errors, 1);
    goto out;
  }
  int64_t cpu0 = thread_cpu_ns();
  for (int64_t f = 0; f < s->count && !atomic_load(&s->stop); f++) {
    int64_t sched = s->start_ns + f * period;
    int64_t g = s->first + f;  // the frame's index in the stream
    int key = g == 0 || (s->key_interval > 0 && g % s->key_interval == 0);
    for (int i = 0; i < ppf; i++) {
      int len = build_rtp(bufs[i], &s->rtp, rtp_seq++, (uint32_t)(g * ts_step), i == ppf - 1, seq++, sched, key && i == 0);
      if (s->fast || s->srtp) {
        int64_t p0 = now_ns();
        int bad = s->fast ? fast_srtp_protect(s->fast, bufs[i], &len) != 0 : srtp_protect(s->srtp, bufs[i], &len) != srtp_err_status_ok;
        if (bad) atomic_fetch_add(&s->send_errors, 1);
        atomic_fetch_add(&s->protect_ns, now_ns() - p0);
      }
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = (size_t)len;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &s->dest;
      msgs[i].msg_hdr.msg_namelen = s->dest_len;
    }
    struct timespec ts = {.tv_sec = sched / 1000000000LL, .tv_nsec = sched % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
    // Latency is measured from the scheduled time: a sender that wakes late shows as delay.
    int64_t late = now_ns() - sched;
    if (late > atomic_load(&s->max_late_ns)) atomic_store(&s->max_late_ns, late);
    atomic_fetch_add(&s->late_sum_ns, late);
    // A frame larger than one batch goes out in several sendmmsg calls, back to back.
    int done = 0;
    while (done < ppf) {
      int n = ppf - done > BATCH ? BATCH : ppf - done;
      int r = sendmmsg(s->fd, msgs + done, (unsigned)n, 0);
      if (r < 0) {
        if (errno == EAGAIN || errno == ENOBUFS) {
          struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};
          poll(&pfd, 1, 10);
          continue;
        }
        atomic_fetch_add(&s->send_errors, ppf - done);
        break;
      }
      done += r;
    }
    atomic_fetch_add(&s->sent, done);
  }
  s->cpu_ns = thread_cpu_ns() - cpu0;
out:
  free(bufs);
  free(msgs);
  free(iov);
  atomic_store(&s->done, 1);
  return NULL;
}

static void sender_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  sender_t *s = data;
  atomic_store(&s->stop, 1);
  if (!s->joined) pthread_join(s->thread, NULL);
  if (s->srtp) srtp_dealloc(s->srtp);
  fast_srtp_free(s->fast);
  free(s);
}

// senderStart({ fd, host, port, rtp: spec, frameRate, packetsPerFrame, frames, startNs?, keyInterval?, srtp?: { suite, key } })
static napi_value js_sender_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value o;
  CHECK(napi_get_cb_info(env, info, &argc, &o, NULL, NULL));
  if (argc < 1) return throw_coded(env, "INVALID_ARGUMENT", "expected options");
  sender_t *s = calloc(1, sizeof *s);
  if (!s) return throw_coded(env, "INTERNAL", "out of memory");
  napi_value host = prop(env, o, "host"), port = prop(env, o, "port"), rtp = prop(env, o, "rtp"), key = prop(env, o, "srtp");
  if (!host || !port || !get_addr_arg(env, host, port, &s->dest, &s->dest_len)) {
    free(s);
    if (!host || !port) return throw_coded(env, "NATIVE_BAD_ADDRESS", "host and port are required");
    return NULL;
  }
  if (!rtp || !read_rtp_spec(env, rtp, &s->rtp)) {
    free(s);
    return rtp ? NULL : throw_coded(env, "INVALID_ARGUMENT", "rtp spec required");
  }
  s->fd = (int)num_prop(env, o, "fd", -1);
  s->frame_rate = num_prop(env, o, "frameRate", 50);
  s->packets_per_frame = (int)num_prop(env, o, "packetsPerFrame", 1);
  s->count = (int64_t)num_prop(env, o, "frames", 0);
  s->key_interval = (int)num_prop(env, o, "keyInterval", 0);
  s->first = (int64_t)num_prop(env, o, "firstFrame", 0);
  s->start_ns = (int64_t)num_prop(env, o, "startNs", 0);
  if (s->start_ns <= 0) s->start_ns = now_ns() + 1000000;
  if (s->fd < 0 || s->frame_rate <= 0 || s->packets_per_frame < 1) {
    free(s);
    return throw_coded(env, "INVALID_ARGUMENT", "fd, frameRate > 0 and packetsPerFrame >= 1 are required");
  }
  if (key) {
    key_spec ks;
    if (!read_key_spec(env, key, &ks)) {
      free(s);
      return NULL;
    }
    ks.any = 1;
    int tag = strcmp(ks.suite, "AES_CM_128_HMAC_SHA1_80") == 0 ? 10 : strcmp(ks.suite, "AES_CM_128_HMAC_SHA1_32") == 0 ? 4 : 0;
    // The sender protects each frame before its scheduled time (sender_main), so its SRTP speed
    // is outside the measurement: libsrtp2 by default, libcrypto on request.
    if (tag && getenv("C4V_SENDER_OPENSSL")) s->fast = fast_srtp_new(ks.key, tag);
    const char *err;
    // A libsrtp session as well: it validates the key the same way for both implementations.
    s->srtp = make_session(&ks, 1, 1, &err);
    if (!s->srtp) {
      fast_srtp_free(s->fast);
      free(s);
      return throw_coded(env, "NATIVE_BAD_SRTP_KEY", err);
    }
  }
  if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
    if (s->srtp) srtp_dealloc(s->srtp);
    fast_srtp_free(s->fast);
    free(s);
    return throw_coded(env, "INTERNAL", "pthread_create failed");
  }
  napi_value ext;
  CHECK(napi_create_external(env, s, sender_finalize, NULL, &ext));
  return ext;
}

static napi_value sender_status(napi_env env, sender_t *s) {
  // `done` is read first: the thread sets it after its last counter update, so a status that says
  // done also carries the final counts. (Read after them, a sender finishing in between could be
  // reported done with its last frame missing from `sent`.)
  int done = atomic_load(&s->done) != 0;
  napi_value out;
  CHECK(napi_create_object(env, &out));
  set_num(env, out, "sent", (double)atomic_load(&s->sent));
  set_num(env, out, "sendErrors", (double)atomic_load(&s->send_errors));
  set_num(env, out, "maxLateNs", (double)atomic_load(&s->max_late_ns));
  set_num(env, out, "lateSumNs", (double)atomic_load(&s->late_sum_ns));
  set_num(env, out, "protectNs", (double)atomic_load(&s->protect_ns));
  set_num(env, out, "startNs", (double)s->start_ns);
  set_num(env, out, "cpuNs", (double)s->cpu_ns);
  napi_value d;
  napi_get_boolean(env, done, &d);
  napi_set_named_property(env, out, "done", d);
  return out;
}

// senderStatus(handle) / senderStop(handle) -> { sent, sendErrors, maxLateNs, done, ... }
static napi_value js_sender_status(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value h;
  sender_t *s;
  CHECK(napi_get_cb_info(env, info, &argc, &h, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, h, (void **)&s) != napi_ok) return throw_coded(env, "INVALID_ARGUMENT", "not a sender");
  return sender_status(env, s);
}
static napi_value js_sender_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value h;
  sender_t *s;
  CHECK(napi_get_cb_info(env, info, &argc, &h, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, h, (void **)&s) != napi_ok) return throw_coded(env, "INVALID_ARGUMENT", "not a sender");
  atomic_store(&s->stop, 1);
  if (!s->joined) {
    pthread_join(s->thread, NULL);
    s->joined = 1;
  }
  return sender_status(env, s);
}

// ------------------------------------------------------------------------------------------------
// receiver: records (copy index, sequence, one-way delay) per packet
// ------------------------------------------------------------------------------------------------

typedef struct {
  uint32_t copy;
  uint32_t seq;
  int64_t delay_ns;
} record_t;

typedef struct {
  uint32_t ssrc;
  uint32_t copy;
} ssrc_slot;

typedef struct {
  pthread_t thread;
  int fd;
  // One libsrtp session per copy (NULL: plain), found through the SSRC table: a single session
  // with thousands of streams would walk libsrtp's stream list on every packet.
  srtp_t *srtp;
  fast_srtp **fast;         // per copy, for the AES_CM_128 suites (NULL: use srtp[copy])
  ssrc_slot *table;         // open-addressing map ssrc -> copy index
  uint32_t table_mask;
  uint32_t copies;
  record_t *records;
  size_t cap;
  _Atomic size_t count;
  _Atomic int64_t dropped_records, unknown_ssrc, rtcp, srtp_failures, bytes;
  _Atomic int stop;
  int64_t cpu_ns;
  int joined;
  // Kernel receive timestamps (SO_TIMESTAMPNS): each copy is timed when it entered the socket's
  // queue (on loopback: inside the forwarder's send call), not when this thread read it, so the
  // figure is the forwarder's and the receiver may read in batches (sleep_ns between drains) and
  // take far less CPU from the forwarders it measures.
  int kernel_ts;
  int64_t sleep_ns;
  _Atomic int64_t kernel_stamped;
} receiver_t;

static int copy_of(receiver_t *r, uint32_t ssrc) {
  if (!r->table) return 0;
  for (uint32_t i = (ssrc * 2654435761u) & r->table_mask;; i = (i + 1) & r->table_mask) {
    if (r->table[i].copy == UINT32_MAX) return -1;
    if (r->table[i].ssrc == ssrc) return (int)r->table[i].copy;
  }
}

// The kernel's receive time of a datagram (CLOCK_REALTIME) on CLOCK_MONOTONIC, or -1 without one.
static int64_t kernel_rx_ns(struct msghdr *h, int64_t realtime_minus_mono) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof ts);
      return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - realtime_minus_mono;
    }
  }
  return -1;
}

static int64_t realtime_minus_mono_ns(void) {
  struct timespec a, b;
  clock_gettime(CLOCK_REALTIME, &a);
  clock_gettime(CLOCK_MONOTONIC, &b);
  return ((int64_t)a.tv_sec - b.tv_sec) * 1000000000LL + (a.tv_nsec - b.tv_nsec);
}

static void *receiver_main(void *arg) {
  receiver_t *r = arg;
  try_realtime();
  uint8_t bufs[BATCH][MAX_PACKET + SRTP_TRAILER];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  uint8_t ctrl[BATCH][CMSG_SPACE(sizeof(struct timespec))];
  int64_t cpu0 = thread_cpu_ns();
  while (!atomic_load(&r->stop)) {
    struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
    if (poll(&pfd, 1, 20) <= 0) continue;
    if (r->sleep_ns > 0) {
      // Let the burst queue up and read it in full batches (the kernel timed each datagram).
      struct timespec d = {.tv_sec = r->sleep_ns / 1000000000LL, .tv_nsec = r->sleep_ns % 1000000000LL};
      nanosleep(&d, NULL);
    }
    for (;;) {
      memset(msgs, 0, sizeof msgs);
      for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        if (r->kernel_ts) {
          msgs[i].msg_hdr.msg_control = ctrl[i];
          msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
        }
      }
      int n = recvmmsg(r->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
      if (n <= 0) break;
      int64_t t_user = now_ns();
      int64_t offset = r->kernel_ts ? realtime_minus_mono_ns() : 0;
      for (int i = 0; i < n; i++) {
        uint8_t *p = bufs[i];
        int64_t t = t_user;
        if (r->kernel_ts) {
          int64_t k = kernel_rx_ns(&msgs[i].msg_hdr, offset);
          if (k >= 0) {
            t = k;
            atomic_fetch_add(&r->kernel_stamped, 1);
          }
        }
        int len = (int)msgs[i].msg_len;
        atomic_fetch_add(&r->bytes, len);
        if (len < 12) continue;
        if (p[1] >= 192 && p[1] <= 223) {  // RTCP (sender reports, NACK, PLI): not ours to time
          atomic_fetch_add(&r->rtcp, 1);
          continue;
        }
        uint32_t ssrc = rd32(p + 8);
        int copy = copy_of(r, ssrc);
        if (copy < 0) {
          atomic_fetch_add(&r->unknown_ssrc, 1);
          continue;
        }
        if (r->fast && r->fast[copy] ? fast_srtp_unprotect(r->fast[copy], p, &len) != 0
                                     : r->srtp && r->srtp[copy] && srtp_unprotect(r->srtp[copy], p, &len) != srtp_err_status_ok) {
          atomic_fetch_add(&r->srtp_failures, 1);
          continue;
        }
        const uint8_t *h = find_header(p, len);
        if (!h) {
          atomic_fetch_add(&r->unknown_ssrc, 1);
          continue;
        }
        int64_t sched = (int64_t)(((uint64_t)rd32(h + 12) << 32) | rd32(h + 16));
        size_t c = atomic_load(&r->count);
        if (c >= r->cap) {
          atomic_fetch_add(&r->dropped_records, 1);
          continue;
        }
        r->records[c].copy = (uint32_t)copy;
        r->records[c].seq = rd32(h + 8);
        r->records[c].delay_ns = t - sched;
        atomic_store(&r->count, c + 1);
      }
      if (n < BATCH) break;
    }
  }
  r->cpu_ns = thread_cpu_ns() - cpu0;
  return NULL;
}

static void receiver_free(receiver_t *r) {
  if (r->srtp) {
    for (uint32_t i = 0; i < r->copies; i++)
      if (r->srtp[i]) srtp_dealloc(r->srtp[i]);
    free(r->srtp);
  }
  if (r->fast) {
    for (uint32_t i = 0; i < r->copies; i++) fast_srtp_free(r->fast[i]);
    free(r->fast);
  }
  free(r->table);
  free(r->records);
  free(r);
}

static void receiver_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  receiver_t *r = data;
  atomic_store(&r->stop, 1);
  if (!r->joined) pthread_join(r->thread, NULL);
  receiver_free(r);
}

// receiverStart({ fd, maxRecords, copies?: [{ ssrc, srtp?: { suite, key } }], kernelTimestamps?, batchSleepUs? })
// Without copies every packet counts as copy 0 and SRTP is off.
static napi_value js_receiver_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value o;
  CHECK(napi_get_cb_info(env, info, &argc, &o, NULL, NULL));
  if (argc < 1) return throw_coded(env, "INVALID_ARGUMENT", "expected options");
  receiver_t *r = calloc(1, sizeof *r);
  if (!r) return throw_coded(env, "INTERNAL", "out of memory");
  r->fd = (int)num_prop(env, o, "fd", -1);
  r->cap = (size_t)num_prop(env, o, "maxRecords", 1 << 20);
  r->kernel_ts = num_prop(env, o, "kernelTimestamps", 0) != 0;
  r->sleep_ns = (int64_t)(num_prop(env, o, "batchSleepUs", 0) * 1000);
  if (r->kernel_ts && r->fd >= 0) {
    int on = 1;
    if (setsockopt(r->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) r->kernel_ts = 0;
  }
  r->records = malloc(r->cap * sizeof(record_t));
  if (r->fd < 0 || !r->records) {
    receiver_free(r);
    return throw_coded(env, "INVALID_ARGUMENT", "fd and a sane maxRecords are required");
  }
  napi_value copies = prop(env, o, "copies");
  if (copies) {
    uint32_t n;
    napi_get_array_length(env, copies, &n);
    uint32_t size = 16;
    while (size < n * 2) size <<= 1;
    r->table = malloc(size * sizeof(ssrc_slot));
    r->table_mask = size - 1;
    for (uint32_t i = 0; i < size; i++) r->table[i].copy = UINT32_MAX;
    r->copies = n;
    r->srtp = calloc(n ? n : 1, sizeof(srtp_t));
    r->fast = calloc(n ? n : 1, sizeof(fast_srtp *));
    for (uint32_t c = 0; c < n; c++) {
      napi_value el;
      napi_get_element(env, copies, c, &el);
      uint32_t ssrc = (uint32_t)num_prop(env, el, "ssrc", 0);
      uint32_t j = (ssrc * 2654435761u) & r->table_mask;
      while (r->table[j].copy != UINT32_MAX) j = (j + 1) & r->table_mask;
      r->table[j].ssrc = ssrc;
      r->table[j].copy = c;
      napi_value key = prop(env, el, "srtp");
      if (key) {
        key_spec spec;
        if (!read_key_spec(env, key, &spec)) {
          receiver_free(r);
          return NULL;
        }
        spec.any = 0;
        spec.ssrc = ssrc;
        int tag = strcmp(spec.suite, "AES_CM_128_HMAC_SHA1_80") == 0 ? 10 : strcmp(spec.suite, "AES_CM_128_HMAC_SHA1_32") == 0 ? 4 : 0;
        if (tag && !getenv("C4V_GENERATOR_LIBSRTP")) {
          r->fast[c] = fast_srtp_new(spec.key, tag);
          if (r->fast[c]) continue;
        }
        const char *err;
        r->srtp[c] = make_session(&spec, 1, 0, &err);
        if (!r->srtp[c]) {
          receiver_free(r);
          return throw_coded(env, "NATIVE_BAD_SRTP_KEY", err);
        }
      }
    }
  }
  if (pthread_create(&r->thread, NULL, receiver_main, r) != 0) {
    receiver_free(r);
    return throw_coded(env, "INTERNAL", "pthread_create failed");
  }
  napi_value ext;
  CHECK(napi_create_external(env, r, receiver_finalize, NULL, &ext));
  return ext;
}

static napi_value receiver_status(napi_env env, receiver_t *r) {
  napi_value out;
  CHECK(napi_create_object(env, &out));
  set_num(env, out, "received", (double)atomic_load(&r->count));
  set_num(env, out, "droppedRecords", (double)atomic_load(&r->dropped_records));
  set_num(env, out, "unknown", (double)atomic_load(&r->unknown_ssrc));
  set_num(env, out, "rtcp", (double)atomic_load(&r->rtcp));
  set_num(env, out, "srtpFailures", (double)atomic_load(&r->srtp_failures));
  set_num(env, out, "bytes", (double)atomic_load(&r->bytes));
  set_num(env, out, "cpuNs", (double)r->cpu_ns);
  set_num(env, out, "kernelStamped", (double)atomic_load(&r->kernel_stamped));
  return out;
}

static napi_value js_receiver_status(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value h;
  receiver_t *r;
  CHECK(napi_get_cb_info(env, info, &argc, &h, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, h, (void **)&r) != napi_ok) return throw_coded(env, "INVALID_ARGUMENT", "not a receiver");
  return receiver_status(env, r);
}

// receiverStop(handle) -> { ...status, records: ArrayBuffer of (u32 copy, u32 seq, i64 delayNs) }
static napi_value js_receiver_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value h;
  receiver_t *r;
  CHECK(napi_get_cb_info(env, info, &argc, &h, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, h, (void **)&r) != napi_ok) return throw_coded(env, "INVALID_ARGUMENT", "not a receiver");
  atomic_store(&r->stop, 1);
  if (!r->joined) {
    pthread_join(r->thread, NULL);
    r->joined = 1;
  }
  napi_value out = receiver_status(env, r);
  size_t c = atomic_load(&r->count);
  void *data;
  napi_value ab;
  CHECK(napi_create_arraybuffer(env, c * sizeof(record_t), &data, &ab));
  memcpy(data, r->records, c * sizeof(record_t));
  napi_set_named_property(env, out, "records", ab);
  return out;
}

// ------------------------------------------------------------------------------------------------
// forwarder: receive, copy to N destinations (the physical-limit baseline)
// ------------------------------------------------------------------------------------------------

typedef struct {
  pthread_t thread;
  int in_fd, out_fd;
  struct sockaddr_storage *dests;
  socklen_t *dest_lens;
  uint32_t *ssrcs;          // per-destination SSRC written into each copy (0: keep)
  uint32_t n;
  // Optional SRTP, as an SFU does it: each packet is unprotected once with the ingress key, and
  // each copy protected with its destination's own key after its SSRC is written (AES-CM suites
  // on libcrypto, fastsrtp.h). NULL: plain RTP in / out.
  fast_srtp *in_srtp;
  fast_srtp **out_srtp;
  _Atomic int stop;
  _Atomic int64_t received, sent, send_errors, srtp_failures;
  int64_t cpu_ns;
  int joined;
} forwarder_t;

// Sends the k queued copies (waiting for room when the socket buffer is full); returns 0.
static int forwarder_flush(forwarder_t *f, struct mmsghdr *smsgs, int k) {
  int done = 0;
  while (done < k) {
    int r = sendmmsg(f->out_fd, smsgs + done, (unsigned)(k - done), 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == ENOBUFS) {
        struct pollfd op = {.fd = f->out_fd, .events = POLLOUT};
        poll(&op, 1, 10);
        continue;
      }
      atomic_fetch_add(&f->send_errors, k - done);
      break;
    }
    done += r;
  }
  atomic_fetch_add(&f->sent, done);
  return 0;
}

static void *forwarder_main(void *arg) {
  forwarder_t *f = arg;
  uint8_t in[BATCH][MAX_PACKET + SRTP_TRAILER];
  // One copy buffer per destination per batch slot would be large; a copy only differs in its
  // SSRC, so build each destination's copies in a small ring and flush in sendmmsg batches.
  uint8_t out[BATCH][MAX_PACKET + SRTP_TRAILER];
  struct mmsghdr rmsgs[BATCH], smsgs[BATCH];
  struct iovec riov[BATCH], siov[BATCH];
  int64_t cpu0 = thread_cpu_ns();
  while (!atomic_load(&f->stop)) {
    struct pollfd pfd = {.fd = f->in_fd, .events = POLLIN};
    if (poll(&pfd, 1, 20) <= 0) continue;
    memset(rmsgs, 0, sizeof rmsgs);
    for (int i = 0; i < BATCH; i++) {
      riov[i].iov_base = in[i];
      riov[i].iov_len = sizeof in[i];
      rmsgs[i].msg_hdr.msg_iov = &riov[i];
      rmsgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(f->in_fd, rmsgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) continue;
    atomic_fetch_add(&f->received, n);
    int k = 0;
    for (int i = 0; i < n; i++) {
      int len = (int)rmsgs[i].msg_len;
      // A packet that fails authentication is dropped (and counted), as an SFU drops it.
      int bad = f->in_srtp && (len < 12 || fast_srtp_unprotect(f->in_srtp, in[i], &len) != 0);
      if (bad) atomic_fetch_add(&f->srtp_failures, 1);
      for (uint32_t d = 0; d < f->n && !bad; d++) {
        int copy_len = len;
        memcpy(out[k], in[i], (size_t)len);
        if (f->ssrcs[d] && len >= 12) {
          uint32_t v = htonl(f->ssrcs[d]);
          memcpy(out[k] + 8, &v, 4);
        }
        if (f->out_srtp && f->out_srtp[d] && (len < 12 || fast_srtp_protect(f->out_srtp[d], out[k], &copy_len) != 0)) {
          atomic_fetch_add(&f->srtp_failures, 1);
          continue;
        }
        siov[k].iov_base = out[k];
        siov[k].iov_len = (size_t)copy_len;
        memset(&smsgs[k], 0, sizeof smsgs[k]);
        smsgs[k].msg_hdr.msg_iov = &siov[k];
        smsgs[k].msg_hdr.msg_iovlen = 1;
        smsgs[k].msg_hdr.msg_name = &f->dests[d];
        smsgs[k].msg_hdr.msg_namelen = f->dest_lens[d];
        if (++k == BATCH) k = forwarder_flush(f, smsgs, k);
      }
    }
    if (k > 0) forwarder_flush(f, smsgs, k);
  }
  f->cpu_ns = thread_cpu_ns() - cpu0;
  return NULL;
}

static void forwarder_free(forwarder_t *f) {
  fast_srtp_free(f->in_srtp);
  if (f->out_srtp) {
    for (uint32_t i = 0; i < f->n; i++) fast_srtp_free(f->out_srtp[i]);
    free(f->out_srtp);
  }
  free(f->dests);
  free(f->dest_lens);
  free(f->ssrcs);
  free(f);
}

static void forwarder_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  forwarder_t *f = data;
  atomic_store(&f->stop, 1);
  if (!f->joined) pthread_join(f->thread, NULL);
  forwarder_free(f);
}

// A forwarder's SRTP context for one key (AES-CM suites only: fastsrtp); NULL after throwing.
static fast_srtp *forwarder_key(napi_env env, napi_value key) {
  key_spec ks;
  if (!read_key_spec(env, key, &ks)) return NULL;
  int tag = strcmp(ks.suite, "AES_CM_128_HMAC_SHA1_80") == 0 ? 10 : strcmp(ks.suite, "AES_CM_128_HMAC_SHA1_32") == 0 ? 4 : 0;
  if (!tag) {
    throw_coded(env, "NATIVE_BAD_SRTP_KEY", "the forwarder does SRTP with the AES_CM_128_HMAC_SHA1_80 / _32 suites only");
    return NULL;
  }
  fast_srtp *s = fast_srtp_new(ks.key, tag);
  if (!s) throw_coded(env, "INTERNAL", "out of memory");
  return s;
}

// forwarderStart({ inFd, outFd, srtp?: { suite, key }, destinations: [{ host, port, ssrc?, srtp? }] })
static napi_value js_forwarder_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value o;
  CHECK(napi_get_cb_info(env, info, &argc, &o, NULL, NULL));
  if (argc < 1) return throw_coded(env, "INVALID_ARGUMENT", "expected options");
  napi_value dests = prop(env, o, "destinations");
  uint32_t n = 0;
  if (!dests || napi_get_array_length(env, dests, &n) != napi_ok || n == 0) {
    return throw_coded(env, "INVALID_ARGUMENT", "at least one destination is required");
  }
  forwarder_t *f = calloc(1, sizeof *f);
  f->in_fd = (int)num_prop(env, o, "inFd", -1);
  f->out_fd = (int)num_prop(env, o, "outFd", -1);
  f->n = n;
  f->dests = calloc(n, sizeof *f->dests);
  f->dest_lens = calloc(n, sizeof *f->dest_lens);
  f->ssrcs = calloc(n, sizeof *f->ssrcs);
  for (uint32_t i = 0; i < n; i++) {
    napi_value el, h, p;
    napi_get_element(env, dests, i, &el);
    h = prop(env, el, "host");
    p = prop(env, el, "port");
    if (!h || !p || !get_addr_arg(env, h, p, &f->dests[i], &f->dest_lens[i])) {
      forwarder_free(f);
      if (!h || !p) return throw_coded(env, "NATIVE_BAD_ADDRESS", "every destination needs host and port");
      return NULL;
    }
    f->ssrcs[i] = (uint32_t)num_prop(env, el, "ssrc", 0);
    napi_value key = prop(env, el, "srtp");
    if (key) {
      if (!f->out_srtp) f->out_srtp = calloc(n, sizeof *f->out_srtp);
      if (!f->out_srtp || !(f->out_srtp[i] = forwarder_key(env, key))) {
        forwarder_free(f);
        return f->out_srtp ? NULL : throw_coded(env, "INTERNAL", "out of memory");
      }
    }
  }
  napi_value in_key = prop(env, o, "srtp");
  if (in_key && !(f->in_srtp = forwarder_key(env, in_key))) {
    forwarder_free(f);
    return NULL;
  }
  if (f->in_fd < 0 || f->out_fd < 0) {
    forwarder_free(f);
    return throw_coded(env, "INVALID_ARGUMENT", "inFd and outFd are required");
  }
  if (pthread_create(&f->thread, NULL, forwarder_main, f) != 0) {
    forwarder_free(f);
    return throw_coded(env, "INTERNAL", "pthread_create failed");
  }
  napi_value ext;
  CHECK(napi_create_external(env, f, forwarder_finalize, NULL, &ext));
  return ext;
}

// forwarderStop(handle) -> { received, sent, sendErrors, cpuNs }
static napi_value js_forwarder_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value h;
  forwarder_t *f;
  CHECK(napi_get_cb_info(env, info, &argc, &h, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, h, (void **)&f) != napi_ok) return throw_coded(env, "INVALID_ARGUMENT", "not a forwarder");
  atomic_store(&f->stop, 1);
  if (!f->joined) {
    pthread_join(f->thread, NULL);
    f->joined = 1;
  }
  napi_value out;
  CHECK(napi_create_object(env, &out));
  set_num(env, out, "received", (double)atomic_load(&f->received));
  set_num(env, out, "sent", (double)atomic_load(&f->sent));
  set_num(env, out, "sendErrors", (double)atomic_load(&f->send_errors));
  set_num(env, out, "srtpFailures", (double)atomic_load(&f->srtp_failures));
  set_num(env, out, "cpuNs", (double)f->cpu_ns);
  return out;
}

// ------------------------------------------------------------------------------------------------

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"nowNs", NULL, js_now_ns, NULL, NULL, NULL, napi_enumerable, NULL},
      {"realtime", NULL, js_realtime, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpOpen", NULL, js_udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpClose", NULL, js_udp_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSend", NULL, js_udp_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpRecv", NULL, js_udp_recv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"buildRtp", NULL, js_build_rtp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpSession", NULL, js_srtp_session, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpProtect", NULL, js_srtp_protect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"srtpUnprotect", NULL, js_srtp_unprotect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"senderStart", NULL, js_sender_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"senderStatus", NULL, js_sender_status, NULL, NULL, NULL, napi_enumerable, NULL},
      {"senderStop", NULL, js_sender_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"receiverStart", NULL, js_receiver_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"receiverStatus", NULL, js_receiver_status, NULL, NULL, NULL, napi_enumerable, NULL},
      {"receiverStop", NULL, js_receiver_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"forwarderStart", NULL, js_forwarder_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"forwarderStop", NULL, js_forwarder_stop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
