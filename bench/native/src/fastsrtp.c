// See fastsrtp.h. RFC 3711: key derivation (3.2.1, 4.3.1 with key_derivation_rate 0), AES-CM
// (4.1.1), HMAC-SHA1 authentication over the packet and the rollover counter (4.2), and the
// index estimate of appendix A.
#include "fastsrtp.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <pthread.h>
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
  EVP_CIPHER_CTX *ctx;      // keyed once with enc_key; each packet only sets its IV
  EVP_MAC_CTX *mac;         // keyed once with auth_key; each packet re-inits with the same key
};

// Fetched once: OpenSSL 3 looks algorithms up in its providers on every implicit use, which
// costs more than the AES and SHA-1 work on a small packet.
static EVP_CIPHER *aes_ctr_cipher;
static EVP_MAC *hmac_alg;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static void fetch_algorithms(void) {
  aes_ctr_cipher = EVP_CIPHER_fetch(NULL, "AES-128-CTR", NULL);
  hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

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
  pthread_once(&fetch_once, fetch_algorithms);
  if (!aes_ctr_cipher || !hmac_alg) return NULL;
  fast_srtp *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->ctx = EVP_CIPHER_CTX_new();
  s->mac = EVP_MAC_CTX_new(hmac_alg);
  s->tag_len = tag_len;
  char digest[] = "SHA1";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  if (!s->ctx || !s->mac || derive(s->ctx, master, master + 16, 0, s->enc_key, 16) != 0 ||
      derive(s->ctx, master, master + 16, 1, s->auth_key, 20) != 0 || derive(s->ctx, master, master + 16, 2, s->salt, 14) != 0 ||
      EVP_EncryptInit_ex2(s->ctx, aes_ctr_cipher, s->enc_key, NULL, NULL) != 1 || EVP_MAC_init(s->mac, s->auth_key, 20, params) != 1) {
    fast_srtp_free(s);
    return NULL;
  }
  return s;
}

// Encrypts (or decrypts: CTR is symmetric) in place with the stream's key and a fresh IV.
static int crypt_iv(fast_srtp *s, const uint8_t iv[16], uint8_t *buf, int len) {
  int out = 0;
  if (EVP_EncryptInit_ex2(s->ctx, NULL, NULL, iv, NULL) != 1) return -1;
  return EVP_EncryptUpdate(s->ctx, buf, &out, buf, len) == 1 ? 0 : -1;
}

// HMAC-SHA1 over data || roc (big-endian) into mac[20].
static int auth_tag(fast_srtp *s, const uint8_t *data, size_t len, uint32_t roc, uint8_t mac[20]) {
  uint8_t r[4] = {(uint8_t)(roc >> 24), (uint8_t)(roc >> 16), (uint8_t)(roc >> 8), (uint8_t)roc};
  size_t out = 0;
  return EVP_MAC_init(s->mac, NULL, 0, NULL) == 1 && EVP_MAC_update(s->mac, data, len) == 1 && EVP_MAC_update(s->mac, r, 4) == 1 &&
                 EVP_MAC_final(s->mac, mac, &out, 20) == 1
             ? 0
             : -1;
}

void fast_srtp_free(fast_srtp *s) {
  if (!s) return;
  if (s->ctx) EVP_CIPHER_CTX_free(s->ctx);
  if (s->mac) EVP_MAC_CTX_free(s->mac);
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
  // Authentication: HMAC-SHA1(packet without tag || ROC).
  uint8_t mac[20];
  if (auth_tag(s, p, (size_t)body_end, v, mac) != 0 || CRYPTO_memcmp(mac, p + body_end, (size_t)s->tag_len) != 0) return -1;
  // IV = salt * 2^16 XOR SSRC * 2^64 XOR index * 2^16.
  uint8_t iv[16] = {0};
  memcpy(iv, s->salt, 14);
  for (int i = 0; i < 4; i++) iv[4 + i] ^= p[8 + i];
  uint64_t index = ((uint64_t)v << 16) | seq;
  for (int i = 0; i < 6; i++) iv[8 + i] ^= (uint8_t)(index >> (8 * (5 - i)));
  if (crypt_iv(s, iv, p + hdr, body_end - hdr) != 0) return -1;
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

int fast_srtp_protect(fast_srtp *s, uint8_t *p, int *len) {
  int n = *len;
  if (n < 12 || (p[0] >> 6) != 2) return -1;
  int hdr = 12 + (p[0] & 0x0f) * 4;
  if (p[0] & 0x10) {
    if (n < hdr + 4) return -1;
    hdr += 4 + ((p[hdr + 2] << 8) | p[hdr + 3]) * 4;
  }
  if (hdr > n) return -1;
  uint16_t seq = (uint16_t)((p[2] << 8) | p[3]);
  // The sender's rollover counter: a sequence number far below the last one wrapped around.
  if (!s->init) {
    s->init = 1;
    s->s_l = seq;
  } else if (seq < s->s_l && s->s_l - seq > 32768) {
    s->roc++;
    s->s_l = seq;
  } else if ((uint16_t)(seq - s->s_l) < 32768) {
    s->s_l = seq;
  }
  uint32_t v = s->roc;
  uint8_t iv[16] = {0};
  memcpy(iv, s->salt, 14);
  for (int i = 0; i < 4; i++) iv[4 + i] ^= p[8 + i];
  uint64_t index = ((uint64_t)v << 16) | seq;
  for (int i = 0; i < 6; i++) iv[8 + i] ^= (uint8_t)(index >> (8 * (5 - i)));
  if (crypt_iv(s, iv, p + hdr, n - hdr) != 0) return -1;
  uint8_t mac[20];
  if (auth_tag(s, p, (size_t)n, v, mac) != 0) return -1;
  memcpy(p + n, mac, (size_t)s->tag_len);
  *len = n + s->tag_len;
  return 0;
}
