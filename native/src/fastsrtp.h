// SRTP unprotect for the receiver's hot path (AES_CM_128_HMAC_SHA1_80/_32) on OpenSSL's libcrypto,
// which uses AES-NI. Debian's libsrtp2 is built without OpenSSL: its own AES and SHA-1 cost about
// 12 us per packet, which made the receiver, not the forwarder, the limit at ~50k packets/s.
// libsrtp2 stays in use for everything else (the sender, protect/unprotect calls, GCM suites);
// test/native.test.ts checks that both agree.
#pragma once
#include <stdint.h>

typedef struct fast_srtp fast_srtp;

/** A receiving context for one SSRC; `master` is 16 key + 14 salt bytes. NULL when out of memory. */
fast_srtp *fast_srtp_new(const uint8_t master[30], int tag_len);
void fast_srtp_free(fast_srtp *s);
/** Authenticates and decrypts in place; 0 on success (len shrinks by the tag), -1 otherwise. */
int fast_srtp_unprotect(fast_srtp *s, uint8_t *p, int *len);
