// SRTP protect / unprotect for the generator's hot paths (sender and receiver threads) (AES_CM_128_HMAC_SHA1_80/_32) on OpenSSL's libcrypto,
// which uses AES-NI. Debian's libsrtp2 is built without OpenSSL: its own AES and SHA-1 cost about
// 12 us per packet with warm caches and about 70 us at 50 packets/s (cold T-tables), which made
// the receiver the limit at ~50k packets/s and added ~70 us to every SRTP path's delay before any
// forwarder touched a packet. libsrtp2 stays in use for the protect/unprotect API and GCM suites;
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
