// Shim: minimal ankerl::unordered_dense (map/set/hash) on top of the C++
// standard library containers (Debian 12 has no unordered-dense package).
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace ankerl
{
  namespace unordered_dense
  {
    template<class T, class Enable = void>
    struct hash : std::hash<T>
    {
      using is_avalanching = void;
    };

    template<
      class Key,
      class T,
      class Hash      = hash<Key>,
      class KeyEqual  = std::equal_to<Key>,
      class Allocator = std::allocator<std::pair<const Key, T>>>
    using map = std::unordered_map<Key, T, Hash, KeyEqual, Allocator>;

    template<
      class Key,
      class Hash      = hash<Key>,
      class KeyEqual  = std::equal_to<Key>,
      class Allocator = std::allocator<Key>>
    using set = std::unordered_set<Key, Hash, KeyEqual, Allocator>;
  } // namespace unordered_dense
} // namespace ankerl
