// guest_timer: times one operation from inside a machine, so a benchmark can compare the same
// operation in the guest and on the host, and separate a guest's own cost from the relay's.
// Built static (it runs in any guest root); prints one line of results, times in microseconds.
//
//   guest_timer spawn N PROGRAM      → spawn_us=a,b,c,...   (posix_spawn + waitpid, N times)
//   guest_timer write PATH MIB       → write_us=T bytes=B   (64 KiB writes, then fsync)
//   guest_timer read PATH            → read_us=T bytes=B    (64 KiB reads to the end)
//   guest_timer walk DIR             → walk_us=T entries=E  (readdir + lstat, recursively)
//
// Exit status 1 with a message on stderr when the operation fails.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

enum { kChunk = 64 * 1024 };

static long long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int fail(const char* what, const char* path) {
    fprintf(stderr, "guest_timer: %s %s: %s\n", what, path, strerror(errno));
    return 1;
}

static int spawn_many(long n, char* program) {
    char* argv[] = {program, NULL};
    printf("spawn_us=");
    for (long i = 0; i < n; i++) {
        long long start = now_us();
        pid_t pid;
        int rc = posix_spawnp(&pid, program, NULL, NULL, argv, environ);
        if (rc != 0) {
            errno = rc;
            return fail("posix_spawn", program);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) < 0) return fail("waitpid", program);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "guest_timer: %s exited with status %d\n", program, status);
            return 1;
        }
        printf("%s%lld", i ? "," : "", now_us() - start);
    }
    printf("\n");
    return 0;
}

static int write_file(const char* path, long mib) {
    static char chunk[kChunk];
    memset(chunk, 'x', sizeof chunk);
    long long start = now_us();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail("open", path);
    long long total = 0, want = (long long)mib << 20;
    while (total < want) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n <= 0) return fail("write", path);
        total += n;
    }
    if (fsync(fd) < 0) return fail("fsync", path);
    close(fd);
    printf("write_us=%lld bytes=%lld\n", now_us() - start, total);
    return 0;
}

static int read_file(const char* path) {
    static char chunk[kChunk];
    long long start = now_us();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail("open", path);
    long long total = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0) return fail("read", path);
        if (n == 0) break;
        total += n;
    }
    close(fd);
    printf("read_us=%lld bytes=%lld\n", now_us() - start, total);
    return 0;
}

// Counts the entries under `dir`, lstat-ing each; -1 on error (errno set, path in `where`).
static long walk(const char* dir, char* where, size_t where_size) {
    DIR* d = opendir(dir);
    if (!d) {
        snprintf(where, where_size, "%s", dir);
        return -1;
    }
    long count = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        struct stat st;
        if (lstat(path, &st) < 0) {
            snprintf(where, where_size, "%s", path);
            closedir(d);
            return -1;
        }
        count++;
        if (S_ISDIR(st.st_mode)) {
            long below = walk(path, where, where_size);
            if (below < 0) {
                closedir(d);
                return -1;
            }
            count += below;
        }
    }
    closedir(d);
    return count;
}

int main(int argc, char** argv) {
    if (argc == 4 && !strcmp(argv[1], "spawn")) return spawn_many(atol(argv[2]), argv[3]);
    if (argc == 4 && !strcmp(argv[1], "write")) return write_file(argv[2], atol(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "read")) return read_file(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "walk")) {
        char where[4096] = "";
        long long start = now_us();
        long entries = walk(argv[2], where, sizeof where);
        if (entries < 0) return fail("walk", where);
        printf("walk_us=%lld entries=%ld\n", now_us() - start, entries);
        return 0;
    }
    fprintf(stderr, "usage: guest_timer spawn N PROGRAM | write PATH MIB | read PATH | walk DIR\n");
    return 2;
}
