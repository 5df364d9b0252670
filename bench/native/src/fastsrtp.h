// SRTP (AES_CM_128_HMAC_SHA1_80/_32) on OpenSSL's libcrypto, which uses AES-NI: the receiver
// thread's hot path (and the sender's with C4V_SENDER_OPENSSL=1). Debian's libsrtp2 is built
// without OpenSSL; its software AES and SHA-1 made the receiver, not the forwarder, the limit at
// ~50k packets/s. Keyed once per stream, this path costs about 1.4 us per packet with warm caches.
// libsrtp2 stays in use for the sender, the protect/unprotect API and the GCM suites;
// test/native.test.ts checks that both agree.
#pragma once
#include <stdint.h>

typedef struct fast_srtp fast_srtp;

/** A context for one SSRC and one direction; `master` is 16 key + 14 salt bytes. NULL when out of memory. */
fast_srtp *fast_srtp_new(const uint8_t master[30], int tag_len);
void fast_srtp_free(fast_srtp *s);
/** Authenticates and decrypts in place; 0 on success (len shrinks by the tag), -1 otherwise. */
int fast_srtp_unprotect(fast_srtp *s, uint8_t *p, int *len);
/** Encrypts and authenticates in place (the buffer needs room for the tag); 0 on success. */
int fast_srtp_protect(fast_srtp *s, uint8_t *p, int *len);
