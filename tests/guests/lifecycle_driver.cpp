// Drives a running Machine from another thread, as the control API will (PATCH /vm, PUT /actions
// SendCtrlAltDel), and checks what the guest shows on COM1. The machine's console (stdout) goes
// into a pipe this program reads; its own report goes to stderr.
//
//   lifecycle_driver pause-resume COUNT_ELF [CYCLES]   the count guest: CYCLES pause/resume cycles
//   lifecycle_driver ctrl-alt-del CTRL_ALT_DEL_ELF     the ctrl_alt_del guest
//
// Exits 0 when every check passed, 1 otherwise, 77 without a usable /dev/kvm (CTest: skipped).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "vmm/base/error.hpp"
#include "vmm/event/process_signals.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/machine/machine.hpp"

namespace kvmlet {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int exit_skip = 77;

[[noreturn]] void fail(std::string const& what) {
    std::fprintf(stderr, "lifecycle_driver: FAIL %s\n", what.c_str());
    std::_Exit(1);
}

void say(std::string const& what) {
    std::fprintf(stderr, "lifecycle_driver: %s\n", what.c_str());
}

// The guest's console: every byte read from the pipe, split into lines; the count guest's
// "count N" lines are checked as they arrive (each N one more than the last).
class Console {
public:
    explicit Console(int fd) : fd_(fd), reader_([this] { read_all(); }) {}
    ~Console() { reader_.join(); }  // returns once the write end is closed

    std::uint64_t bytes() const {
        std::lock_guard lock(mutex_);
        return bytes_;
    }
    std::uint64_t last_count() const {
        std::lock_guard lock(mutex_);
        return last_count_;
    }
    std::string problem() const {
        std::lock_guard lock(mutex_);
        return problem_;
    }
    bool saw_line(std::string_view line) const {
        std::lock_guard lock(mutex_);
        return text_.find(std::string(line) + "\r\n") != std::string::npos;
    }
    std::string text() const {
        std::lock_guard lock(mutex_);
        return text_;
    }
    // Waits until `done` holds (checked under the lock on every byte received) or `timeout`.
    bool wait_for(std::chrono::milliseconds timeout, std::function<bool()> const& done) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, done);
    }
    std::uint64_t last_count_locked() const { return last_count_; }
    bool saw_line_locked(std::string_view line) const {
        return text_.find(std::string(line) + "\r\n") != std::string::npos;
    }

private:
    void read_all() {
        char buffer[4096];
        for (;;) {
            ssize_t n = ::read(fd_, buffer, sizeof buffer);
            if (n <= 0) return;
            std::lock_guard lock(mutex_);
            for (ssize_t i = 0; i < n; ++i) take(buffer[i]);
            bytes_ += static_cast<std::uint64_t>(n);
            changed_.notify_all();
        }
    }
    void take(char c) {
        if (text_.size() < max_text) text_ += c;
        if (c != '\n') {
            line_ += c;
            return;
        }
        std::string_view line(line_);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        constexpr std::string_view prefix = "count ";
        if (line.substr(0, prefix.size()) == prefix) {
            std::uint64_t value = 0;
            auto digits = line.substr(prefix.size());
            auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
            if (ec != std::errc{} || end != digits.data() + digits.size())
                note("a garbled line: '" + std::string(line) + "'");
            else if (value != last_count_ + 1)
                note("count " + std::to_string(value) + " after " + std::to_string(last_count_));
            last_count_ = value;
        }
        line_.clear();
    }
    void note(std::string what) {
        if (problem_.empty()) problem_ = std::move(what);
    }

    static constexpr std::size_t max_text = 1 << 16;  // the start is enough for the report
    int fd_;
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::string text_;
    std::string line_;
    std::uint64_t bytes_ = 0;
    std::uint64_t last_count_ = 0;
    std::string problem_;
    std::thread reader_;
};

// The machine on a thread of its own, as main() runs it on the VMM thread.
class RunningMachine {
public:
    RunningMachine(MachineConfig const& config, KvmSystem const& kvm, ProcessSignals& signals)
        : machine_(config, kvm),
          result_(std::async(std::launch::async, [&] { return machine_.run(signals); })) {}
    ~RunningMachine() {
        if (result_.valid()) {
            ::kill(::getpid(), SIGTERM);
            result_.wait();
        }
    }
    Machine& machine() { return machine_; }
    std::optional<StopReason> wait_for_stop(std::chrono::milliseconds timeout) {
        if (result_.wait_for(timeout) != std::future_status::ready) return std::nullopt;
        return result_.get();
    }

private:
    Machine machine_;
    std::future<StopReason> result_;
};

MachineConfig config_for(char const* kernel) {
    MachineConfig config;
    config.kernel = kernel;
    config.memory_bytes = 64 * MiB;
    return config;
}

// pause() must return once the vCPUs are parked: a pause that never takes effect fails here, not
// at CTest's timeout.
void pause_within(Machine& machine, std::chrono::seconds limit) {
    auto done = std::async(std::launch::async, [&] { machine.pause(); });
    if (done.wait_for(limit) != std::future_status::ready)
        fail("pause() did not return within " + std::to_string(limit.count()) + " s");
}

void require_console_ok(Console const& console) {
    if (auto problem = console.problem(); !problem.empty()) fail("the guest's count: " + problem);
}

// One cycle: run a little, pause, check that nothing comes out while paused, resume, check that the
// count goes on.
void pause_resume_cycle(Machine& machine, Console const& console, int cycle,
                        std::chrono::microseconds run_for, std::chrono::milliseconds hold) {
    std::this_thread::sleep_for(run_for);
    pause_within(machine, 5s);
    if (!machine.paused() || machine.state() != MachineState::paused) fail("pause() returned, not paused");
    // Output written before the pause reaches the pipe: wait until none has come for 20 ms (under
    // load the reader can lag, and kvmlet's console queues what a full pipe did not take). A guest
    // still running prints all the time, so it never settles, and fails below.
    auto bytes = console.bytes();
    for (int settle = 0; settle < 100; ++settle) {
        std::this_thread::sleep_for(20ms);
        if (console.bytes() == bytes) break;
        bytes = console.bytes();
    }
    auto const count = console.last_count();
    std::this_thread::sleep_for(hold);
    if (console.bytes() != bytes)
        fail("cycle " + std::to_string(cycle) + ": the guest printed while paused (count " +
             std::to_string(count) + " -> " + std::to_string(console.last_count()) + ")");
    machine.resume();
    if (machine.paused() || machine.state() != MachineState::running) fail("resume() returned, still paused");
    if (!console.wait_for(10s, [&] { return console.last_count_locked() > count; }))
        fail("cycle " + std::to_string(cycle) + ": no progress within 10 s of resume()");
    require_console_ok(console);
}

int pause_resume(RunningMachine& running, Console const& console, int cycles) {
    Machine& machine = running.machine();
    if (!console.wait_for(20s, [&] { return console.last_count_locked() >= 1; }))
        fail("the guest printed no count within 20 s");
    auto const start = Clock::now();
    for (int cycle = 0; cycle < cycles; ++cycle)
        pause_resume_cycle(machine, console, cycle, std::chrono::microseconds(500 * (cycle % 7)), 10ms);
    auto const elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    say(std::to_string(cycles) + " pause/resume cycles in " + std::to_string(elapsed.count()) +
        " ms, count now " + std::to_string(console.last_count()) + ", every value once, none while paused");

    // Idempotent: twice paused, twice resumed; and a pause longer than the halt watchdog's
    // confirmation (2 samples, up to 500 ms apart): the machine must not count as halted.
    pause_within(machine, 5s);
    pause_within(machine, 5s);
    pause_resume_cycle(machine, console, cycles, 0us, 1500ms);
    machine.resume();
    if (machine.state() != MachineState::running) fail("a second resume() changed the state");
    if (auto stopped = running.wait_for_stop(0ms)) fail("the machine stopped: " + stopped->message);
    say("pause twice, resume twice, a 1.5 s pause: the machine runs on");

    // A stop while paused ends run() promptly.
    pause_within(machine, 5s);
    auto const signalled = Clock::now();
    ::kill(::getpid(), SIGTERM);
    auto stopped = running.wait_for_stop(5s);
    if (!stopped) fail("SIGTERM while paused: run() did not return within 5 s");
    if (stopped->kind != StopKind::signal)
        fail("SIGTERM while paused: stopped as '" + stopped->message + "'");
    auto const took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - signalled);
    say("SIGTERM while paused: run() returned in " + std::to_string(took.count()) + " ms");
    if (machine.state() != MachineState::stopped) fail("state() after the stop is not 'stopped'");
    pause_within(machine, 5s);  // after run(): returns at once
    machine.resume();
    require_console_ok(console);
    return 0;
}

int ctrl_alt_del(RunningMachine& running, Console const& console) {
    Machine& machine = running.machine();
    if (!console.wait_for(20s, [&] { return console.saw_line_locked("keyboard ready"); })) {
        say("guest output:\n" + console.text());
        fail("the guest did not print 'keyboard ready' within 20 s");
    }
    // Sent while paused, the keys wait for the guest; it sees them once resumed.
    pause_within(machine, 5s);
    if (!machine.send_ctrl_alt_del()) fail("send_ctrl_alt_del() refused with the keyboard enabled");
    std::this_thread::sleep_for(200ms);
    if (auto stopped = running.wait_for_stop(0ms))
        fail("the guest reacted while paused: " + stopped->message);
    machine.resume();
    auto stopped = running.wait_for_stop(20s);
    if (!stopped) {
        say("guest output:\n" + console.text());
        fail("no reset within 20 s of Ctrl-Alt-Del");
    }
    if (stopped->kind != StopKind::reset) fail("stopped as '" + stopped->message + "', not by a reset");
    if (!console.saw_line("ctrl-alt-del")) {
        say("guest output:\n" + console.text());
        fail("the guest reset without printing 'ctrl-alt-del'");
    }
    say("Ctrl-Alt-Del sent while paused, seen after resume; the guest reset");
    return 0;
}

int run(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: lifecycle_driver pause-resume|ctrl-alt-del GUEST_ELF [CYCLES]\n");
        return 2;
    }
    std::string_view const mode = argv[1];
    int const cycles = argc > 3 ? std::atoi(argv[3]) : 100;
    if (::access("/dev/kvm", R_OK | W_OK) != 0) {
        std::fprintf(stderr, "lifecycle_driver: skipped: no usable /dev/kvm\n");
        return exit_skip;
    }
    ignore_broken_pipes();
    ProcessSignals signals;
    KvmSystem kvm;

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) fail("pipe2");
    // The machine writes its console to stdout: make that the pipe. stdin: nothing to read.
    if (::dup2(pipe_fds[1], STDOUT_FILENO) < 0) fail("dup2");
    ::close(pipe_fds[1]);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || ::dup2(null_fd, STDIN_FILENO) < 0) fail("stdin from /dev/null");
    ::close(null_fd);

    int status = 0;
    {
        Console console(pipe_fds[0]);
        {
            RunningMachine running(config_for(argv[2]), kvm, signals);
            if (mode == "pause-resume")
                status = pause_resume(running, console, cycles);
            else if (mode == "ctrl-alt-del")
                status = ctrl_alt_del(running, console);
            else
                fail("unknown mode " + std::string(mode));
        }
        ::close(STDOUT_FILENO);  // the console's reader sees the end
    }
    if (status == 0) say("PASS");
    return status;
}

}  // namespace
}  // namespace kvmlet

int main(int argc, char** argv) {
    try {
        return kvmlet::run(argc, argv);
    } catch (std::exception const& e) {
        std::fprintf(stderr, "lifecycle_driver: %s\n", e.what());
        return 1;
    }
}
