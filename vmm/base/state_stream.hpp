#pragma once
// The bytes of one component's saved state (a snapshot section, docs/snapshot.md): values written
// in order, little-endian, and read back in the same order. A device or the VMM saves with a
// StateWriter and loads with a StateReader; the reader checks every length against what is left,
// so a short or malformed section is an Error (set-up time: restore ends the process), never a
// read past the buffer.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "vmm/base/error.hpp"

namespace kvmlet {

static_assert(std::endian::native == std::endian::little, "snapshot sections are little-endian");

class StateWriter {
public:
    // Any trivially copyable value, as its bytes (integers, and KVM's own structs, whose layout
    // the kernel ABI fixes).
    template <class T>
    void put(T const& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        put_bytes(std::as_bytes(std::span{&value, 1}));
    }
    void put_bool(bool value) { put<std::uint8_t>(value ? 1 : 0); }
    template <class T>
    void put_optional(std::optional<T> const& value) {
        put_bool(value.has_value());
        put(value.value_or(T{}));
    }
    void put_bytes(std::span<std::byte const> bytes) {
        bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    }
    // A length (u32) and then the entries.
    template <class T>
    void put_vector(std::vector<T> const& values) {
        put(static_cast<std::uint32_t>(values.size()));
        put_bytes(std::as_bytes(std::span{values}));
    }

    std::vector<std::byte> const& bytes() const noexcept { return bytes_; }
    std::vector<std::byte> take() noexcept { return std::move(bytes_); }

private:
    std::vector<std::byte> bytes_;
};

class StateReader {
public:
    // `what` names the section in errors ("snapshot section serial: ...").
    StateReader(std::span<std::byte const> bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}

    template <class T>
    T get() {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        std::memcpy(&value, take(sizeof(T)).data(), sizeof(T));
        return value;
    }
    bool get_bool() {
        auto value = get<std::uint8_t>();
        if (value > 1) throw malformed("a flag is neither 0 nor 1");
        return value == 1;
    }
    template <class T>
    std::optional<T> get_optional() {
        bool const present = get_bool();
        T value = get<T>();
        T const none{};
        if (!present && std::memcmp(&value, &none, sizeof(T)) != 0)
            throw malformed("an absent value is not zero");
        return present ? std::optional<T>(value) : std::nullopt;
    }
    // At most `max_count` entries: a length from the file never sizes an allocation unchecked.
    template <class T>
    std::vector<T> get_vector(std::uint32_t max_count) {
        static_assert(std::is_trivially_copyable_v<T>);
        auto count = get<std::uint32_t>();
        if (count > max_count)
            throw malformed(fmt::format("{} entries, at most {} expected", count, max_count));
        std::vector<T> values(count);
        std::memcpy(values.data(), take(std::size_t{count} * sizeof(T)).data(),
                    std::size_t{count} * sizeof(T));
        return values;
    }
    // Every byte read: a section longer than its reader expects is as wrong as a shorter one.
    void finish() const {
        if (offset_ != bytes_.size())
            throw malformed(fmt::format("{} bytes left over", bytes_.size() - offset_));
    }
    Error malformed(std::string const& why) const {
        return Error(fmt::format("snapshot section {}: {}", what_, why));
    }

private:
    std::span<std::byte const> take(std::size_t length) {
        if (length > bytes_.size() - offset_)
            throw malformed(fmt::format("ends after {} bytes, more expected", bytes_.size()));
        auto out = bytes_.subspan(offset_, length);
        offset_ += length;
        return out;
    }

    std::span<std::byte const> bytes_;
    std::size_t offset_ = 0;
    std::string what_;
};

// A component whose state goes into a snapshot: two methods, kept with the component (the
// device-host design of issue 17), so the machine saves and loads a list, not a switch by kind.
// load() runs on a freshly built component before anything runs; it throws Error (through
// StateReader) on state that cannot be the component's.
class Persistent {
public:
    virtual ~Persistent() = default;
    virtual void save(StateWriter& out) const = 0;
    virtual void load(StateReader& in) = 0;
};

}  // namespace kvmlet
