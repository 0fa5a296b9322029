#pragma once
// The MMDS data store: one JSON object per microVM, written by the API thread (PUT and PATCH
// /mmds, --metadata) and read by every MMDS-enabled network interface on the VMM thread. Every
// call takes the store's lock, so a reader sees the contents before or after an update, never
// in between. JSON stays inside mmds_store.cpp: callers hand in and get back text.
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace kvmlet::virtio::net::mmds {

class MmdsStore {
public:
    // How a value goes to the guest: JSON (Accept: application/json), or IMDS style: a string as
    // it is, an object as its keys one per line, "/" after each key whose value is an object.
    enum class Format { json, imds };
    struct Answer {
        enum class Status { ok, not_found, unsupported };  // unsupported: IMDS of a non-string leaf
        Status status = Status::not_found;
        std::string body;
    };

    MmdsStore();
    ~MmdsStore();
    MmdsStore(MmdsStore const&) = delete;
    MmdsStore& operator=(MmdsStore const&) = delete;

    // The value at `path` ("/latest/meta-data/ami-id": object keys, or decimal array indices,
    // separated by '/'; empty segments are ignored, so "/" and "" are the whole store).
    Answer lookup(std::string_view path, Format format) const;
    // Replaces the contents with a JSON object; returns what is wrong otherwise (nothing changes).
    std::optional<std::string> replace(std::string_view json_text);
    // RFC 7396 merge patch with a JSON object.
    std::optional<std::string> merge_patch(std::string_view json_text);
    std::string json_text() const;

private:
    struct Data;
    mutable std::mutex mutex_;
    std::unique_ptr<Data> data_;
};

}  // namespace kvmlet::virtio::net::mmds
