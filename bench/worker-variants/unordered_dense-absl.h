// Shim: ankerl::unordered_dense (map/set/hash) on top of Abseil's Swiss tables
// (absl::flat_hash_map / flat_hash_set from Debian's libabsl-dev; Debian 12 has no
// unordered-dense package).
//
// Why not std::unordered_map: it is node-based, so every lookup and every step of an
// iteration is a pointer chase to a separately allocated node. The worker's hot path
// iterates sets like Router::mapProducerConsumers (one producer -> N consumers) for
// every packet; unordered_dense (upstream) and flat_hash_* both keep entries in one
// contiguous array, which is what the worker is tuned for upstream.
//
// Semantics that mediasoup relies on and that this shim keeps:
// - `it = m.erase(it)` returns the next iterator (Abseil's erase(iterator) returns
//   void; erasing in a flat_hash_map invalidates only the erased iterator, so the
//   successor taken before the erase stays valid).
// - No pointer stability: like unordered_dense (a vector underneath), flat_hash_map
//   moves entries on rehash; upstream mediasoup is written for that.
// - `hash<T>` is a usable hasher for the standard key types (integers, enums,
//   pointers, strings), with `is_avalanching` as upstream declares it. Abseil's hash
//   mixes its output, which its tables need (std::hash<int> is the identity).
#pragma once
#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace ankerl
{
  namespace unordered_dense
  {
    template<class T, class Enable = void>
    struct hash : absl::Hash<T>
    {
      using is_avalanching = void;
    };

    template<
      class Key,
      class T,
      class Hash      = hash<Key>,
      class KeyEqual  = std::equal_to<Key>,
      class Allocator = std::allocator<std::pair<const Key, T>>>
    class map : public absl::flat_hash_map<Key, T, Hash, KeyEqual, Allocator>
    {
      using Base = absl::flat_hash_map<Key, T, Hash, KeyEqual, Allocator>;

    public:
      using Base::Base;
      using Base::erase;

      typename Base::iterator erase(typename Base::iterator it)
      {
        auto next = std::next(it);
        Base::erase(it);
        return next;
      }
    };

    template<
      class Key,
      class Hash      = hash<Key>,
      class KeyEqual  = std::equal_to<Key>,
      class Allocator = std::allocator<Key>>
    class set : public absl::flat_hash_set<Key, Hash, KeyEqual, Allocator>
    {
      using Base = absl::flat_hash_set<Key, Hash, KeyEqual, Allocator>;

    public:
      using Base::Base;
      using Base::erase;

      typename Base::iterator erase(typename Base::iterator it)
      {
        auto next = std::next(it);
        Base::erase(it);
        return next;
      }
    };
  } // namespace unordered_dense
} // namespace ankerl
