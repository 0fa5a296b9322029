// The VMM stand-in of the jail tests (jail.sh): run by `kvmlet jail` as its --exec-file, it prints
// what it sees from inside the jail, one "key: value" line each, then "ready", waits until the
// test creates /go in the jail root (or 30 s pass) and exits with the status given by --exit.
//   /jail_probe --id ID [--escape PATH]... [--exit N]
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

static int by_name(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

static void print_root(void) {
    char* names[256];
    int n = 0;
    DIR* dir = opendir("/");
    struct dirent* e;
    while (dir && (e = readdir(dir)) && n < 256) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names[n++] = strdup(e->d_name);
    }
    if (dir) closedir(dir);
    qsort(names, (size_t)n, sizeof names[0], by_name);
    printf("root:");
    for (int i = 0; i < n; ++i) printf(" %s", names[i]);
    printf("\n");
}

static void print_ids(void) {
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    getresuid(&ru, &eu, &su);
    getresgid(&rg, &eg, &sg);
    printf("uid: %u %u %u\ngid: %u %u %u\ngroups: %d\n", ru, eu, su, rg, eg, sg, getgroups(0, NULL));
}

static void print_caps(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};
    syscall(SYS_capget, &header, data);
    printf("caps: effective=%x%08x permitted=%x%08x inheritable=%x%08x\n", data[1].effective, data[0].effective,
           data[1].permitted, data[0].permitted, data[1].inheritable, data[0].inheritable);
    int bounding = 0, ambient = 0;
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap) {
        bounding += prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        ambient += prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1;
    }
    printf("bounding: %d\nambient: %d\nno_new_privs: %d\n", bounding, ambient, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
}

static void print_process(void) {
    int env = 0;
    for (char** e = environ; e && *e; ++e) ++env;
    printf("env: %d\nfds:", env);
    for (int fd = 0; fd < 1024; ++fd) {
        if (fcntl(fd, F_GETFD) >= 0) printf(" %d", fd);
    }
    printf("\npid: %d\n", getpid());
    printf("proc: %s\n", access("/proc/self", F_OK) == 0 ? "present" : "absent");
    printf("net:");
    struct if_nameindex* names = if_nameindex();
    for (struct if_nameindex* i = names; i && i->if_index != 0; ++i) printf(" %s", i->if_name);
    if (names) if_freenameindex(names);
    printf("\n");
}

static void print_device(const char* path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        printf("dev %s: absent\n", path);
        return;
    }
    printf("dev %s: %s %u:%u %u:%u %04o\n", path, S_ISCHR(st.st_mode) ? "char" : "other", major(st.st_rdev),
           minor(st.st_rdev), st.st_uid, st.st_gid, st.st_mode & 07777);
}

static void try_escape(const char* path) {
    int fd = open(path, O_RDONLY);
    printf("escape %s: %s\n", path, fd >= 0 ? "OPENED" : strerrorname_np(errno));
    if (fd >= 0) close(fd);
}

int main(int argc, char** argv) {
    int status = 0;
    printf("argv:");
    for (int i = 1; i < argc; ++i) printf(" %s", argv[i]);
    printf("\n");
    print_root();
    print_ids();
    print_caps();
    print_process();
    print_device("/dev/kvm");
    print_device("/dev/net/tun");
    print_device("/dev/userfaultfd");
    for (int i = 1; i + 1 < argc; ++i) {
        if (strcmp(argv[i], "--escape") == 0) try_escape(argv[i + 1]);
        if (strcmp(argv[i], "--exit") == 0) status = atoi(argv[i + 1]);
    }
    printf("ready\n");
    fflush(stdout);
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 3000 && access("/go", F_OK) != 0; ++i) nanosleep(&tick, NULL);
    return status;
}
