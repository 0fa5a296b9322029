#include "devices/virtio/net/mmds/mmds_store.hpp"

#include <charconv>
#include <nlohmann/json.hpp>

namespace kvmlet::virtio::net::mmds {

struct MmdsStore::Data {
    nlohmann::json json = nlohmann::json::object();
};

namespace {

std::optional<nlohmann::json> parse_object(std::string_view text, std::string& error) {
    auto json = nlohmann::json::parse(text, nullptr, false);
    if (json.is_discarded()) {
        error = "not valid JSON";
        return std::nullopt;
    }
    if (!json.is_object()) {
        error = "not a JSON object";
        return std::nullopt;
    }
    return json;
}

// The child of `node` named `segment`, or nullptr. Bounded by the segment's length.
nlohmann::json const* child(nlohmann::json const& node, std::string_view segment) {
    if (node.is_object()) {
        auto it = node.find(std::string(segment));
        return it == node.end() ? nullptr : &*it;
    }
    if (!node.is_array() || segment.empty() || (segment.size() > 1 && segment[0] == '0')) return nullptr;
    std::size_t index = 0;
    auto [end, error] = std::from_chars(segment.data(), segment.data() + segment.size(), index);
    if (error != std::errc{} || end != segment.data() + segment.size() || index >= node.size())
        return nullptr;
    return &node[index];
}

MmdsStore::Answer imds_text(nlohmann::json const& value) {
    using Status = MmdsStore::Answer::Status;
    if (value.is_string()) return {Status::ok, value.get<std::string>()};
    if (!value.is_object()) return {Status::unsupported, {}};
    std::string out;
    for (auto const& [key, member] : value.items()) {
        if (!out.empty()) out += '\n';
        out += key;
        if (member.is_object()) out += '/';
    }
    return {Status::ok, std::move(out)};
}

}  // namespace

MmdsStore::MmdsStore() : data_(std::make_unique<Data>()) {}
MmdsStore::~MmdsStore() = default;

MmdsStore::Answer MmdsStore::lookup(std::string_view path, Format format) const {
    std::lock_guard lock(mutex_);
    nlohmann::json const* node = &data_->json;
    while (!path.empty()) {
        std::size_t slash = path.find('/');
        std::string_view segment = path.substr(0, slash);
        path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
        if (segment.empty()) continue;
        node = child(*node, segment);
        if (node == nullptr) return {};
    }
    if (format == Format::json) return {Answer::Status::ok, node->dump()};
    return imds_text(*node);
}

std::optional<std::string> MmdsStore::replace(std::string_view json_text) {
    std::string error;
    auto json = parse_object(json_text, error);
    if (!json) return error;
    std::lock_guard lock(mutex_);
    data_->json = std::move(*json);
    return std::nullopt;
}

std::optional<std::string> MmdsStore::merge_patch(std::string_view json_text) {
    std::string error;
    auto json = parse_object(json_text, error);
    if (!json) return error;
    std::lock_guard lock(mutex_);
    data_->json.merge_patch(*json);
    return std::nullopt;
}

std::string MmdsStore::json_text() const {
    std::lock_guard lock(mutex_);
    return data_->json.dump();
}

}  // namespace kvmlet::virtio::net::mmds
