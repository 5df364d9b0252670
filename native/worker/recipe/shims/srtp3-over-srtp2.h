// Shim: expose the libsrtp 3.0 (versatica fork) API used by mediasoup on top
// of Debian's cisco libsrtp 2.5.0 (<srtp2/srtp.h>, -lsrtp2).
#pragma once
#ifdef MS_SRTP3_OPAQUE_POLICY
// libsrtp 3 (>= 3.0.0-beta 2fc078db) makes srtp_policy_t an opaque pointer.
#define srtp_policy_t srtp2_policy_t
#include <srtp2/srtp.h>
#undef srtp_policy_t
typedef srtp2_policy_t* srtp_policy_t;
#else
#include <srtp2/srtp.h>
#endif
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

// Error codes added in libsrtp 3.
static constexpr srtp_err_status_t srtp_err_status_buffer_small = static_cast<srtp_err_status_t>(28);
static constexpr srtp_err_status_t srtp_err_status_cryptex_err  = static_cast<srtp_err_status_t>(29);

namespace ms_srtp_shim
{
  typedef srtp_err_status_t (*inplace_fn)(srtp_t, void*, int*);
  inline srtp_err_status_t run(
    inplace_fn fn, srtp_t ctx, const uint8_t* in, size_t inLen, uint8_t* out, size_t* outLen, size_t extra)
  {
    if (*outLen < inLen + extra)
      return srtp_err_status_buffer_small;
    if (out != in)
      std::memmove(out, in, inLen);
    int l = static_cast<int>(inLen);
    srtp_err_status_t e = fn(ctx, out, &l);
    if (e == srtp_err_status_ok)
      *outLen = static_cast<size_t>(l);
    return e;
  }
} // namespace ms_srtp_shim

inline srtp_err_status_t srtp_protect(
  srtp_t ctx, const uint8_t* rtp, size_t rtpLen, uint8_t* srtp, size_t* srtpLen, size_t /*mkiIndex*/)
{
  return ms_srtp_shim::run(&::srtp_protect, ctx, rtp, rtpLen, srtp, srtpLen, SRTP_MAX_TRAILER_LEN);
}
inline srtp_err_status_t srtp_unprotect(
  srtp_t ctx, const uint8_t* srtp, size_t srtpLen, uint8_t* rtp, size_t* rtpLen)
{
  return ms_srtp_shim::run(&::srtp_unprotect, ctx, srtp, srtpLen, rtp, rtpLen, 0);
}
inline srtp_err_status_t srtp_protect_rtcp(
  srtp_t ctx, const uint8_t* rtcp, size_t rtcpLen, uint8_t* srtcp, size_t* srtcpLen, size_t /*mkiIndex*/)
{
  return ms_srtp_shim::run(
    &::srtp_protect_rtcp, ctx, rtcp, rtcpLen, srtcp, srtcpLen, SRTP_MAX_TRAILER_LEN + 4);
}
inline srtp_err_status_t srtp_unprotect_rtcp(
  srtp_t ctx, const uint8_t* srtcp, size_t srtcpLen, uint8_t* rtcp, size_t* rtcpLen)
{
  return ms_srtp_shim::run(&::srtp_unprotect_rtcp, ctx, srtcp, srtcpLen, rtcp, rtcpLen, 0);
}
// libsrtp 3 renamed srtp_remove_stream() to srtp_stream_remove().
inline srtp_err_status_t srtp_stream_remove(srtp_t s, uint32_t ssrc)
{
  return srtp_remove_stream(s, ssrc);
}

#ifdef MS_SRTP3_OPAQUE_POLICY
// Opaque policy object API of libsrtp 3, backed by a libsrtp 2 policy struct
// followed by storage for the concatenated master key + salt.
struct ms_srtp_policy_holder
{
  srtp2_policy_t policy; // must be first
  uint8_t keySalt[SRTP_MAX_KEY_LEN + 32];
};
inline srtp_err_status_t srtp_policy_create(srtp_policy_t* policy)
{
  auto* h = new (std::nothrow) ms_srtp_policy_holder();
  if (!h)
    return srtp_err_status_alloc_fail;
  std::memset(h, 0, sizeof(*h));
  h->policy.key = h->keySalt;
  *policy = &h->policy;
  return srtp_err_status_ok;
}
inline void srtp_policy_destroy(srtp_policy_t policy)
{
  delete reinterpret_cast<ms_srtp_policy_holder*>(policy);
}
inline srtp_err_status_t srtp_policy_set_ssrc(srtp_policy_t policy, srtp_ssrc_t ssrc)
{
  policy->ssrc = ssrc;
  return srtp_err_status_ok;
}
inline srtp_err_status_t srtp_policy_set_profile(srtp_policy_t policy, srtp_profile_t profile)
{
  srtp_err_status_t e = srtp_crypto_policy_set_from_profile_for_rtp(&policy->rtp, profile);
  if (e != srtp_err_status_ok)
    return e;
  return srtp_crypto_policy_set_from_profile_for_rtcp(&policy->rtcp, profile);
}
inline srtp_err_status_t srtp_policy_add_key(
  srtp_policy_t policy,
  const uint8_t* key,
  size_t keyLen,
  const uint8_t* salt,
  size_t saltLen,
  const uint8_t* mki,
  size_t mkiLen)
{
  auto* h = reinterpret_cast<ms_srtp_policy_holder*>(policy);
  if (mki || mkiLen || keyLen + saltLen > sizeof(h->keySalt))
    return srtp_err_status_bad_param;
  std::memcpy(h->keySalt, key, keyLen);
  std::memcpy(h->keySalt + keyLen, salt, saltLen);
  return srtp_err_status_ok;
}
inline srtp_err_status_t srtp_policy_set_allow_repeat_tx(srtp_policy_t policy, bool allow)
{
  policy->allow_repeat_tx = allow ? 1 : 0;
  return srtp_err_status_ok;
}
inline srtp_err_status_t srtp_policy_set_window_size(srtp_policy_t policy, size_t windowSize)
{
  policy->window_size = static_cast<unsigned long>(windowSize);
  return srtp_err_status_ok;
}
#endif
