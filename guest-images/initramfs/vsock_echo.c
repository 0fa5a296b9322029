/* vsock-echo: the guest end of kvmlet's vsock tests (tests/linux/vsock_linux.py), built static
 * by guest-images/build into the minimal initramfs as /bin/vsock-echo.
 *
 *   vsock-echo listen PORT [COUNT]  listens on vsock port PORT (any CID), prints
 *                                   "vsock-echo: listening on port PORT", and echoes each
 *                                   connection's bytes back until its EOF, then shuts down its
 *                                   write side and prints
 *                                   "vsock-echo: echoed N bytes sha256 HEX"; after COUNT
 *                                   connections (default: never) it exits
 *   vsock-echo send CID PORT BYTES  connects to CID:PORT, sends BYTES of the pattern below while
 *                                   reading what comes back, shuts down its write side once all
 *                                   is sent, reads to EOF, and prints
 *                                   "vsock-echo: sent N bytes sha256 HEX received M bytes sha256 HEX";
 *                                   exit status 0 when both agree
 *
 * The pattern: little-endian 32-bit words, word k = k * 2654435761 mod 2^32 (odd multiplier: every
 * word differs, so a lost, repeated or moved piece changes the hash), cut at BYTES.
 *
 * Kernel code runs emulated on our hosts (../../shared/HOST.md): 256 KiB reads and writes, no
 * per-byte system calls, and only the lines above on the console.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

enum { chunk = 256 * 1024, connect_timeout_s = 30 };

/* ---- SHA-256 (FIPS 180-4) ---- */

struct sha256 {
    uint32_t h[8];
    uint64_t length;
    unsigned char block[64];
    size_t used;
};

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_init(struct sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->length = 0;
    s->used = 0;
}

static void sha256_block(struct sha256 *s, const unsigned char *p)
{
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, s->h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = a[7] + (rotr(a[4], 6) ^ rotr(a[4], 11) ^ rotr(a[4], 25)) +
                      ((a[4] & a[5]) ^ (~a[4] & a[6])) + sha256_k[i] + w[i];
        uint32_t t2 = (rotr(a[0], 2) ^ rotr(a[0], 13) ^ rotr(a[0], 22)) +
                      ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
        memmove(a + 1, a, 7 * sizeof a[0]);
        a[4] += t1;
        a[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        s->h[i] += a[i];
}

static void sha256_update(struct sha256 *s, const unsigned char *p, size_t n)
{
    s->length += n;
    while (n > 0) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->block + s->used, p, take);
        s->used += take;
        p += take;
        n -= take;
        if (s->used == 64) {
            sha256_block(s, s->block);
            s->used = 0;
        }
    }
}

/* Writes the digest as 64 hex digits and a NUL into hex. */
static void sha256_hex(struct sha256 *s, char hex[65])
{
    uint64_t bits = s->length * 8;
    unsigned char pad[72] = {0x80};
    size_t padding = (s->used < 56 ? 56 : 120) - s->used;
    for (int i = 0; i < 8; i++)
        pad[padding + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(s, pad, padding + 8);
    for (int i = 0; i < 8; i++)
        sprintf(hex + 8 * i, "%08x", s->h[i]);
}

/* ---- helpers ---- */

static void die(const char *what)
{
    fprintf(stderr, "vsock-echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static unsigned long number(const char *text, unsigned long max, const char *what)
{
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || end == text || *end || value > max) {
        fprintf(stderr, "vsock-echo: bad %s '%s'\n", what, text);
        exit(2);
    }
    return value;
}

static int vsock_socket(void)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket(AF_VSOCK)");
    return fd;
}

/* Writes all of buf; returns 0, or -1 with errno set. */
static int write_all(int fd, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- listen ---- */

static void echo(int fd, unsigned char *buf)
{
    struct sha256 hash;
    unsigned long long total = 0;
    char hex[65];
    const char *failed = NULL;
    int error = 0;
    sha256_init(&hash);
    for (;;) {
        ssize_t n = read(fd, buf, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            failed = "read";
            error = errno;
            break;
        }
        if (n == 0) {
            shutdown(fd, SHUT_WR);
            break;
        }
        sha256_update(&hash, buf, (size_t)n);
        total += (unsigned long long)n;
        if (write_all(fd, buf, (size_t)n) != 0) {
            failed = "write";
            error = errno;
            break;
        }
    }
    sha256_hex(&hash, hex);
    if (failed)
        printf("vsock-echo: %s failed after %llu bytes: %s\n", failed, total, strerror(error));
    else
        printf("vsock-echo: echoed %llu bytes sha256 %s\n", total, hex);
    fflush(stdout);
}

static int listen_mode(unsigned int port, unsigned long count)
{
    struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY};
    int fd = vsock_socket();
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("bind");
    if (listen(fd, 16) != 0)
        die("listen");
    printf("vsock-echo: listening on port %u\n", port);
    fflush(stdout);
    unsigned char *buf = malloc(chunk);
    if (!buf)
        die("malloc");
    for (unsigned long served = 0; count == 0 || served < count; served++) {
        int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
            if (errno == EINTR)
                continue;
            die("accept");
        }
        echo(conn, buf);
        close(conn);
    }
    free(buf);
    close(fd);
    return 0;
}

/* ---- send ---- */

/* Fills buf with n bytes of the pattern from offset `at` (a multiple of 4). */
static void pattern(unsigned char *buf, unsigned long long at, size_t n)
{
    uint32_t k = (uint32_t)(at / 4);
    for (size_t i = 0; i < n; i += 4, k++) {
        uint32_t word = k * 2654435761u;
        for (size_t b = 0; b < 4 && i + b < n; b++)
            buf[i + b] = (unsigned char)(word >> (8 * b));
    }
}

struct sender {
    unsigned long long total, sent, received;
    unsigned char *out, *in;
    size_t out_at, out_len; /* the part of out still to write */
    struct sha256 sent_hash, received_hash;
};

/* Writes the next piece of the pattern; -1 on an error other than EAGAIN. */
static int send_some(int fd, struct sender *s)
{
    if (s->out_len == 0) {
        unsigned long long left = s->total - s->sent;
        s->out_len = left < chunk ? (size_t)left : chunk;
        s->out_at = 0;
        pattern(s->out, s->sent, s->out_len);
        sha256_update(&s->sent_hash, s->out, s->out_len);
    }
    ssize_t n = send(fd, s->out + s->out_at, s->out_len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    s->out_at += (size_t)n;
    s->out_len -= (size_t)n;
    s->sent += (unsigned long long)n;
    if (s->sent == s->total && shutdown(fd, SHUT_WR) != 0)
        return -1;
    return 0;
}

/* Reads what came back; 1 at EOF, -1 on an error other than EAGAIN. */
static int receive_some(int fd, struct sender *s)
{
    ssize_t n = read(fd, s->in, chunk);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0)
        return 1;
    sha256_update(&s->received_hash, s->in, (size_t)n);
    s->received += (unsigned long long)n;
    return 0;
}

static int send_mode(unsigned int cid, unsigned int port, unsigned long long total)
{
    struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = cid};
    struct timeval timeout = {.tv_sec = connect_timeout_s};
    struct sender s = {.total = total, .out = malloc(chunk), .in = malloc(chunk)};
    char sent_hex[65], received_hex[65];
    int fd = vsock_socket();
    if (!s.out || !s.in)
        die("malloc");
    sha256_init(&s.sent_hash);
    sha256_init(&s.received_hash);
    /* The kernel's default is 2 s; its timer runs while its code runs emulated. */
    setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &timeout, sizeof timeout);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("connect");
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0)
        die("fcntl");
    if (total == 0 && shutdown(fd, SHUT_WR) != 0)
        die("shutdown");
    /* Both ways at once: the peer echoes while we send, and stops reading once we stop. */
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (s.sent < s.total ? POLLOUT : 0)};
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            int r = receive_some(fd, &s);
            if (r < 0)
                die("read");
            if (r > 0)
                break;
        }
        if ((p.revents & POLLOUT) && s.sent < s.total && send_some(fd, &s) < 0)
            die("write");
    }
    close(fd);
    sha256_hex(&s.sent_hash, sent_hex);
    sha256_hex(&s.received_hash, received_hex);
    printf("vsock-echo: sent %llu bytes sha256 %s received %llu bytes sha256 %s\n", s.sent, sent_hex,
           s.received, received_hex);
    fflush(stdout);
    return s.sent == s.total && s.received == s.sent && strcmp(sent_hex, received_hex) == 0 ? 0 : 1;
}

static int usage(void)
{
    fputs("usage: vsock-echo listen PORT [COUNT]\n"
          "       vsock-echo send CID PORT BYTES\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && argc <= 4 && strcmp(argv[1], "listen") == 0)
        return listen_mode((unsigned int)number(argv[2], UINT32_MAX, "port"),
                           argc == 4 ? number(argv[3], ULONG_MAX, "count") : 0);
    if (argc == 5 && strcmp(argv[1], "send") == 0)
        return send_mode((unsigned int)number(argv[2], UINT32_MAX, "CID"),
                         (unsigned int)number(argv[3], UINT32_MAX, "port"),
                         number(argv[4], ULONG_MAX, "byte count"));
    return usage();
}
