// See fastsrtp.h. RFC 3711: key derivation (3.2.1, 4.3.1 with key_derivation_rate 0), AES-CM
// (4.1.1), HMAC-SHA1 authentication over the packet and the rollover counter (4.2), and the
// index estimate of appendix A.
#include "fastsrtp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

struct fast_srtp {
  uint8_t enc_key[16];
  uint8_t salt[14];
  uint8_t auth_key[20];
  int tag_len;
  int init;
  uint32_t roc;
  uint16_t s_l;
  EVP_CIPHER_CTX *ctx;
};

static int aes_ctr(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t iv[16], uint8_t *buf, int len) {
  int out = 0;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, key, iv) != 1) return -1;
  return EVP_EncryptUpdate(ctx, buf, &out, buf, len) == 1 ? 0 : -1;
}

static int derive(EVP_CIPHER_CTX *ctx, const uint8_t *mkey, const uint8_t *msalt, uint8_t label, uint8_t *out, int len) {
  uint8_t iv[16] = {0};
  memcpy(iv, msalt, 14);
  iv[7] ^= label;
  memset(out, 0, (size_t)len);
  return aes_ctr(ctx, mkey, iv, out, len);
}

fast_srtp *fast_srtp_new(const uint8_t master[30], int tag_len) {
  fast_srtp *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->ctx = EVP_CIPHER_CTX_new();
  s->tag_len = tag_len;
  if (!s->ctx || derive(s->ctx, master, master + 16, 0, s->enc_key, 16) != 0 ||
      derive(s->ctx, master, master + 16, 1, s->auth_key, 20) != 0 || derive(s->ctx, master, master + 16, 2, s->salt, 14) != 0) {
    fast_srtp_free(s);
    return NULL;
  }
  return s;
}

void fast_srtp_free(fast_srtp *s) {
  if (!s) return;
  if (s->ctx) EVP_CIPHER_CTX_free(s->ctx);
  OPENSSL_cleanse(s, sizeof *s);
  free(s);
}

int fast_srtp_unprotect(fast_srtp *s, uint8_t *p, int *len) {
  int n = *len;
  if (n < 12 + s->tag_len || (p[0] >> 6) != 2) return -1;
  int hdr = 12 + (p[0] & 0x0f) * 4;
  if (p[0] & 0x10) {
    if (n < hdr + 4) return -1;
    hdr += 4 + ((p[hdr + 2] << 8) | p[hdr + 3]) * 4;
  }
  int body_end = n - s->tag_len;
  if (hdr > body_end) return -1;
  uint16_t seq = (uint16_t)((p[2] << 8) | p[3]);
  uint32_t v;
  if (!s->init) {
    v = 0;
  } else if (s->s_l < 32768) {
    v = (int)seq - (int)s->s_l > 32768 ? s->roc - 1 : s->roc;
  } else {
    v = (int)s->s_l - 32768 > (int)seq ? s->roc + 1 : s->roc;
  }
  // Authentication: HMAC-SHA1(packet without tag || ROC); the tag is moved aside so that the ROC
  // can follow the authenticated part in the same buffer (it has room for a trailer).
  uint8_t tag[20], mac[20];
  memcpy(tag, p + body_end, (size_t)s->tag_len);
  p[body_end] = (uint8_t)(v >> 24);
  p[body_end + 1] = (uint8_t)(v >> 16);
  p[body_end + 2] = (uint8_t)(v >> 8);
  p[body_end + 3] = (uint8_t)v;
  unsigned int maclen = 0;
  if (!HMAC(EVP_sha1(), s->auth_key, 20, p, (size_t)body_end + 4, mac, &maclen) || CRYPTO_memcmp(mac, tag, (size_t)s->tag_len) != 0) {
    memcpy(p + body_end, tag, (size_t)s->tag_len);
    return -1;
  }
  // IV = salt * 2^16 XOR SSRC * 2^64 XOR index * 2^16.
  uint8_t iv[16] = {0};
  memcpy(iv, s->salt, 14);
  for (int i = 0; i < 4; i++) iv[4 + i] ^= p[8 + i];
  uint64_t index = ((uint64_t)v << 16) | seq;
  for (int i = 0; i < 6; i++) iv[8 + i] ^= (uint8_t)(index >> (8 * (5 - i)));
  if (aes_ctr(s->ctx, s->enc_key, iv, p + hdr, body_end - hdr) != 0) return -1;
  if (!s->init || v == s->roc + 1) {
    s->init = 1;
    s->roc = v;
    s->s_l = seq;
  } else if (v == s->roc && seq > s->s_l) {
    s->s_l = seq;
  }
  *len = body_end;
  return 0;
}
