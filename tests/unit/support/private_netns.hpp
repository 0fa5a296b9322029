#pragma once
// Runs a test body in a forked child inside a network namespace of its own (unshare
// CLONE_NEWNET). Nothing the body does can reach the host's interfaces, and the namespace, with
// every TAP and socket made in it, disappears when the child exits: on success, on a failed
// check, on a crash, and at the latest after the timeout (SIGALRM). Needs CAP_SYS_ADMIN (root);
// without it the caller is told to skip.
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

namespace kvmlet::test {

// Fails the body in the child: caught and reported to the parent.
struct NetnsFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};
inline void netns_expect(bool condition, std::string const& what) {
    if (!condition) throw NetnsFailure(what);
}

struct NetnsOutcome {
    bool skipped = false;  // no namespace could be made (not root): nothing ran
    std::string failure;   // empty: the body ran to its end
};

inline NetnsOutcome run_in_private_netns(std::function<void()> const& body, unsigned timeout_seconds = 20) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) return {false, "pipe failed"};
    pid_t const child = ::fork();
    if (child < 0) return {false, "fork failed"};
    if (child == 0) {
        ::close(pipe_fds[0]);
        ::alarm(timeout_seconds);
        std::string message;
        if (::unshare(CLONE_NEWNET) != 0) {
            message = "\x01skip";
        } else {
            try {
                body();
            } catch (std::exception const& e) {
                message = e.what();
                if (message.empty()) message = "exception";
            } catch (...) {
                message = "a check failed (see the output above)";
            }
        }
        (void)!::write(pipe_fds[1], message.data(), message.size());
        ::_exit(0);  // no atexit handlers or test-framework teardown in the child
    }
    ::close(pipe_fds[1]);
    std::string message;
    char buffer[512];
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
        message.append(buffer, static_cast<std::size_t>(n));
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    if (message == "\x01skip") return {true, {}};
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return {false,
                "the child died" +
                    (WIFSIGNALED(status) ? " of signal " + std::to_string(WTERMSIG(status)) : std::string())};
    return {false, message};
}

}  // namespace kvmlet::test
