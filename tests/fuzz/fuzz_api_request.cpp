// Fuzz target: Firecracker's API as a client reaches it. The input is a byte stream from a client:
// Beast's HTTP parser (with the server's limits) cuts it into requests, which go one after the
// other through one ApiRouter (vmm/api/api_router.cpp), against a fake machine whose start always
// succeeds, so state changes (InstanceStart, pause) are covered too.
//
// Beyond "no crash" (ASan, UBSan), it checks the contract's rules on every response: a 204 has
// no body; a 200 carries a JSON object; anything else is a 400 with a JSON object holding a
// string fault_message; GET / always reports one of the three states.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "vmm/api/api_router.hpp"
#include "vmm/api/api_server.hpp"

namespace kvmlet::fuzz {
namespace {

namespace http = boost::beast::http;
using namespace kvmlet::api;

class FakeMachine final : public MachineControl {
public:
    void apply_logger(LoggerSettings const&) override {}  // never touches the host's files
    void start(VmResources const&, MachineConfig,
               std::function<void(std::optional<std::string>)> done) override {
        done(std::nullopt);
    }
    std::optional<std::string> pause() override { return std::nullopt; }
    std::optional<std::string> resume() override { return std::nullopt; }
    std::optional<std::string> send_ctrl_alt_del() override { return std::nullopt; }
    std::optional<std::string> flush_metrics() override { return "no metrics"; }
    std::optional<std::string> replace_drive(std::size_t, std::string const&) override { return "no"; }
    std::optional<std::string> create_snapshot(std::string const&, std::string const&, bool) override {
        return "no";
    }
    std::optional<std::string> update_drive_rate_limiter(std::size_t,
                                                         virtio::RateLimiterConfig const&) override {
        return std::nullopt;
    }
    std::optional<std::string> update_interface_rate_limiters(std::size_t, virtio::RateLimiterConfig const&,
                                                              virtio::RateLimiterConfig const&) override {
        return "no";
    }
};

void check(ApiResponse const& response) {
    if (response.status == 204) {
        if (!response.body.empty()) std::abort();
        return;
    }
    Json body = Json::parse(response.body);  // throws (and so aborts) on invalid JSON
    if (!body.is_object()) std::abort();
    if (response.status == 200) return;
    if (response.status != 400) std::abort();
    if (!body.contains("fault_message") || !body["fault_message"].is_string()) std::abort();
}

}  // namespace
}  // namespace kvmlet::fuzz

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace kvmlet::fuzz;
    FakeMachine machine;
    ApiRouter router({}, {}, machine);
    std::string_view input(reinterpret_cast<char const*>(data), size);
    int requests = 0;
    while (!input.empty() && requests < 32) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(ApiServer::max_header_bytes);
        parser.body_limit(max_request_body);
        parser.eager(true);
        boost::beast::error_code ec;
        std::size_t used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
        if (ec || !parser.is_done()) break;  // the server closes such a connection
        input.remove_prefix(used);
        ++requests;
        auto& r = parser.get();
        ApiRequest request{std::string(r.method_string()), std::string(r.target()), r.body()};
        bool replied = false;
        router.handle(request, [&](ApiResponse response) {
            replied = true;
            check(response);
        });
        if (!replied) std::abort();  // every request gets exactly one answer
        std::optional<ApiResponse> info;
        router.handle({"GET", "/", ""}, [&](ApiResponse response) { info = response; });
        auto state = Json::parse(info->body).at("state").get<std::string>();
        if (state != "Not started" && state != "Running" && state != "Paused") std::abort();
    }
    return 0;
}
