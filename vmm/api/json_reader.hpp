#pragma once
// Strict reading of JSON objects from users (the config file, API request bodies): every member
// is read at most once with its type checked, and finish() rejects any member nobody read, naming
// it with its path ("drives[1].cache_typ: unknown field"). Errors are ConfigError, one line.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/base/error.hpp"

namespace kvmlet::api {

// A config file or request body that does not fit the schema. In a config file it ends kvmlet
// (status 1); in an API request it becomes a 400 with the message as fault_message.
class ConfigError : public Error {
public:
    explicit ConfigError(std::string message) : Error(std::move(message)) {}
};

using Json = nlohmann::json;

// Parses text as JSON; a syntax error is a ConfigError naming `what` and the byte offset.
Json parse_json(std::string_view text, std::string_view what);

class JsonObject {
public:
    // `path` names the object in messages ("" for the top level, "drives[0]", ...).
    JsonObject(Json const& value, std::string path);

    std::optional<std::string> optional_string(std::string_view key);
    std::string string(std::string_view key);
    std::optional<bool> optional_bool(std::string_view key);
    // An integer in [min, max].
    std::optional<std::uint64_t> optional_uint(std::string_view key, std::uint64_t min, std::uint64_t max);
    std::uint64_t uint(std::string_view key, std::uint64_t min, std::uint64_t max);
    // A string among `choices` (exact spelling).
    std::optional<std::string> optional_choice(std::string_view key,
                                               std::vector<std::string_view> const& choices);
    // A nested object or array, for a reader of its own; nullptr when absent.
    Json const* optional_object(std::string_view key);
    Json const* optional_array(std::string_view key);
    bool has(std::string_view key) const;

    // The path of a member, for nested readers and messages.
    std::string member_path(std::string_view key) const;
    // Throws for the first member that was not read.
    void finish() const;

private:
    Json const* member(std::string_view key);
    [[noreturn]] void wrong_type(std::string_view key, std::string_view expected) const;

    Json const& value_;
    std::string path_;
    std::set<std::string, std::less<>> read_;
};

// The path of an array element: "drives[2]".
std::string element_path(std::string_view array_path, std::size_t index);

}  // namespace kvmlet::api
