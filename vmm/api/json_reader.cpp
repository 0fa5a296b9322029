#include "vmm/api/json_reader.hpp"

#include <fmt/format.h>

namespace kvmlet::api {
namespace {

std::string joined(std::vector<std::string_view> const& choices) {
    std::string out;
    for (std::size_t i = 0; i < choices.size(); ++i) {
        if (i > 0) out += i + 1 == choices.size() ? " or " : ", ";
        out += fmt::format("\"{}\"", choices[i]);
    }
    return out;
}

}  // namespace

Json parse_json(std::string_view text, std::string_view what) {
    try {
        return Json::parse(text.begin(), text.end());
    } catch (Json::parse_error const& e) {
        throw ConfigError(fmt::format("{}: not valid JSON (byte {})", what, e.byte));
    } catch (Json::exception const& e) {
        // A number too large for any integer or double, for one: the text is JSON, kvmlet cannot hold it.
        throw ConfigError(fmt::format("{}: {}", what, e.what()));
    }
}

std::string element_path(std::string_view array_path, std::size_t index) {
    return fmt::format("{}[{}]", array_path, index);
}

JsonObject::JsonObject(Json const& value, std::string path) : value_(value), path_(std::move(path)) {
    if (!value_.is_object())
        throw ConfigError(path_.empty() ? std::string("expected a JSON object")
                                        : fmt::format("{}: expected an object", path_));
}

std::string JsonObject::member_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

bool JsonObject::has(std::string_view key) const {
    return value_.contains(key);
}

Json const* JsonObject::member(std::string_view key) {
    read_.emplace(key);
    auto it = value_.find(key);
    // JSON null counts as absent, as Firecracker's optional fields do.
    if (it == value_.end() || it->is_null()) return nullptr;
    return &*it;
}

void JsonObject::wrong_type(std::string_view key, std::string_view expected) const {
    throw ConfigError(fmt::format("{}: expected {}", member_path(key), expected));
}

std::optional<std::string> JsonObject::optional_string(std::string_view key) {
    Json const* v = member(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) wrong_type(key, "a string");
    return v->get<std::string>();
}

std::string JsonObject::string(std::string_view key) {
    auto v = optional_string(key);
    if (!v) throw ConfigError(fmt::format("{}: missing field", member_path(key)));
    return *v;
}

std::optional<bool> JsonObject::optional_bool(std::string_view key) {
    Json const* v = member(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) wrong_type(key, "true or false");
    return v->get<bool>();
}

std::optional<std::uint64_t> JsonObject::optional_uint(std::string_view key, std::uint64_t min,
                                                       std::uint64_t max) {
    Json const* v = member(key);
    if (v == nullptr) return std::nullopt;
    // A negative or fractional number is as wrong as a string.
    bool integer = v->is_number_unsigned() || (v->is_number_integer() && v->get<std::int64_t>() >= 0);
    if (!integer) wrong_type(key, fmt::format("an integer from {} to {}", min, max));
    auto n = v->get<std::uint64_t>();
    if (n < min || n > max)
        throw ConfigError(fmt::format("{}: {} is out of range ({} to {})", member_path(key), n, min, max));
    return n;
}

std::uint64_t JsonObject::uint(std::string_view key, std::uint64_t min, std::uint64_t max) {
    auto v = optional_uint(key, min, max);
    if (!v) throw ConfigError(fmt::format("{}: missing field", member_path(key)));
    return *v;
}

std::optional<std::string> JsonObject::optional_choice(std::string_view key,
                                                       std::vector<std::string_view> const& choices) {
    auto v = optional_string(key);
    if (!v) return std::nullopt;
    for (auto choice : choices) {
        if (choice == *v) return v;
    }
    throw ConfigError(fmt::format("{}: \"{}\" is not one of {}", member_path(key), *v, joined(choices)));
}

Json const* JsonObject::optional_object(std::string_view key) {
    Json const* v = member(key);
    if (v != nullptr && !v->is_object()) wrong_type(key, "an object");
    return v;
}

Json const* JsonObject::optional_array(std::string_view key) {
    Json const* v = member(key);
    if (v != nullptr && !v->is_array()) wrong_type(key, "an array");
    return v;
}

void JsonObject::finish() const {
    for (auto const& [key, value] : value_.items()) {
        if (!read_.contains(key)) throw ConfigError(fmt::format("{}: unknown field", member_path(key)));
    }
}

}  // namespace kvmlet::api
