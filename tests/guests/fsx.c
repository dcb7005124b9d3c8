// fsx: random file operations checked against an in-memory model, in the spirit of the classic
// file-system exerciser. Runs inside a booted guest against a file on a virtio-fs share; every
// read (pread and through a shared mapping) is compared with the model, and the model's final
// bytes are summarised as FNV-1a so the host can check the file it sees.
//
//   fsx FILE OPS SEED [MAX_SIZE]
//   → "fsx ok ops=2000 size=123456 fnv=0123456789abcdef mmap=yes"   (exit 0)
//   → "fsx FAIL op 17 (read 0x1000+0x200): byte at 0x1010 is 0x00, model has 0x5c" + the
//     last operations (exit 1)
//
// Operations: write, truncate (grow or shrink), read, mapped read, mapped write (growing the file
// first when needed), fsync, and close + reopen. A file system that refuses shared mappings
// (ENODEV) runs without the mapped operations and says mmap=no; so does FSX_NO_MMAP=1 in the
// environment.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OP_WRITE, OP_TRUNCATE, OP_READ, OP_MAPREAD, OP_MAPWRITE, OP_FSYNC, OP_REOPEN, OP_COUNT };
static const char* const kOpNames[OP_COUNT] = {"write",    "truncate", "read",  "mapread",
                                               "mapwrite", "fsync",    "reopen"};

#define HISTORY 32
struct Record {
    long n;
    int op;
    uint64_t offset, length;
};
static struct Record history[HISTORY];
static long op_number;

static const char* path;
static int fd = -1;
static uint8_t* model;
static uint64_t model_size;  // the file's size according to the model
static uint64_t max_size;
static uint64_t rng_state;
static int use_mmap = 1;
static long page_size;

static uint64_t next_random(void) {  // xorshift64*
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(uint64_t n) { return n ? next_random() % n : 0; }

static void dump_history(void) {
    fprintf(stderr, "last operations (newest last):\n");
    long first = op_number >= HISTORY ? op_number - HISTORY + 1 : 0;
    for (long n = first; n <= op_number; ++n) {
        const struct Record* r = &history[n % HISTORY];
        if (r->n != n) continue;
        fprintf(stderr, "  %ld %s %#" PRIx64 "+%#" PRIx64 "\n", r->n, kOpNames[r->op], r->offset,
                r->length);
    }
}

static void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char* fmt, ...) {
    const struct Record* r = &history[op_number % HISTORY];
    printf("fsx FAIL op %ld (%s %#" PRIx64 "+%#" PRIx64 "): ", op_number, kOpNames[r->op], r->offset,
           r->length);
    va_list args;
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    printf("\n");
    fflush(stdout);
    dump_history();
    exit(1);
}

static void open_file(int flags) {
    fd = open(path, O_RDWR | O_CLOEXEC | flags, 0644);
    if (fd < 0) fail("open %s: %s", path, strerror(errno));
}

static void check_bytes(const uint8_t* got, uint64_t offset, uint64_t length) {
    for (uint64_t i = 0; i < length; ++i)
        if (got[i] != model[offset + i])
            fail("byte at %#" PRIx64 " is %#x, model has %#x", offset + i, got[i],
                 model[offset + i]);
}

static void check_size(void) {
    struct stat st;
    if (fstat(fd, &st) < 0) fail("fstat: %s", strerror(errno));
    if ((uint64_t)st.st_size != model_size)
        fail("file size is %" PRIu64 ", model has %" PRIu64, (uint64_t)st.st_size, model_size);
}

static void fill(uint64_t offset, uint64_t length) {
    // Bytes that say which operation wrote them: a stale or misplaced block shows up.
    uint8_t seed = (uint8_t)(op_number * 31 + 7);
    for (uint64_t i = 0; i < length; ++i) model[offset + i] = (uint8_t)(seed + (offset + i) * 13);
}

static void do_write(uint64_t offset, uint64_t length) {
    if (offset > model_size) memset(model + model_size, 0, offset - model_size);  // the hole
    fill(offset, length);
    ssize_t n = pwrite(fd, model + offset, length, (off_t)offset);
    if (n != (ssize_t)length) fail("pwrite returned %zd: %s", n, strerror(errno));
    if (offset + length > model_size) model_size = offset + length;
}

static void do_truncate(uint64_t size) {
    if (ftruncate(fd, (off_t)size) < 0) fail("ftruncate: %s", strerror(errno));
    if (size > model_size) memset(model + model_size, 0, size - model_size);
    model_size = size;
}

static void do_read(uint64_t offset, uint64_t length) {
    uint8_t* buffer = malloc(length ? length : 1);
    if (!buffer) fail("out of memory");
    ssize_t n = pread(fd, buffer, length, (off_t)offset);
    uint64_t expect = offset >= model_size ? 0
                      : model_size - offset < length ? model_size - offset
                                                     : length;
    if (n != (ssize_t)expect)
        fail("pread returned %zd, model expects %" PRIu64 " (%s)", n, expect,
             n < 0 ? strerror(errno) : "short");
    check_bytes(buffer, offset, expect);
    free(buffer);
}

// Maps [offset, offset + length) of the file, page-aligned around it.
static uint8_t* map_range(uint64_t offset, uint64_t length, int prot, uint64_t* base,
                          uint64_t* span) {
    *base = offset & ~(uint64_t)(page_size - 1);
    *span = offset + length - *base;
    void* p = mmap(NULL, *span, prot, MAP_SHARED, fd, (off_t)*base);
    if (p == MAP_FAILED) {
        if (errno == ENODEV && op_number == 0) return NULL;
        fail("mmap: %s", strerror(errno));
    }
    return p;
}

static void do_mapread(uint64_t offset, uint64_t length) {
    uint64_t base, span;
    uint8_t* p = map_range(offset, length, PROT_READ, &base, &span);
    if (!p) {
        use_mmap = 0;
        return;
    }
    check_bytes(p + (offset - base), offset, length);
    munmap(p, span);
}

static void do_mapwrite(uint64_t offset, uint64_t length) {
    if (offset + length > model_size) do_truncate(offset + length);
    uint64_t base, span;
    uint8_t* p = map_range(offset, length, PROT_READ | PROT_WRITE, &base, &span);
    if (!p) {
        use_mmap = 0;
        return;
    }
    fill(offset, length);
    memcpy(p + (offset - base), model + offset, length);
    if (msync(p, span, MS_SYNC) < 0) fail("msync: %s", strerror(errno));
    munmap(p, span);
}

static uint64_t fnv1a(const uint8_t* p, uint64_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint64_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s FILE OPS SEED [MAX_SIZE]\n", argv[0]);
        return 2;
    }
    path = argv[1];
    long ops = strtol(argv[2], NULL, 0);
    // splitmix64 of the seed: nearby seeds give unrelated sequences, and the state is never 0.
    uint64_t z = strtoull(argv[3], NULL, 0) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    rng_state = (z ^ (z >> 31)) | 1;
    max_size = argc > 4 ? strtoull(argv[4], NULL, 0) : 256 * 1024;
    page_size = sysconf(_SC_PAGESIZE);
    if (ops < 1 || max_size < 4096) {
        fprintf(stderr, "fsx: OPS must be at least 1 and MAX_SIZE at least 4096\n");
        return 2;
    }
    if (getenv("FSX_NO_MMAP")) use_mmap = 0;  // plain reads and writes only
    model = calloc(max_size, 1);
    if (!model) return 2;
    open_file(O_CREAT | O_TRUNC);

    for (op_number = 0; op_number < ops; ++op_number) {
        int op = (int)below(OP_COUNT);
        if (!use_mmap && (op == OP_MAPREAD || op == OP_MAPWRITE)) op = OP_READ;
        // Most writes and reads are small; some span many pages.
        uint64_t offset = below(max_size);
        uint64_t limit = max_size - offset;
        uint64_t length = 1 + below(below(4) == 0 ? limit : (limit < 4096 ? limit : 4096));
        if (op == OP_TRUNCATE) {
            offset = below(max_size + 1);
            length = 0;
        }
        if (op == OP_MAPREAD) {
            if (model_size == 0) op = OP_READ;
            else {
                offset = below(model_size);
                length = 1 + below(model_size - offset);
            }
        }
        history[op_number % HISTORY] = (struct Record){op_number, op, offset, length};
        switch (op) {
            case OP_WRITE: do_write(offset, length); break;
            case OP_TRUNCATE: do_truncate(offset); break;
            case OP_READ: do_read(offset, length); break;
            case OP_MAPREAD: do_mapread(offset, length); break;
            case OP_MAPWRITE: do_mapwrite(offset, length); break;
            case OP_FSYNC:
                if (fsync(fd) < 0) fail("fsync: %s", strerror(errno));
                break;
            case OP_REOPEN:
                close(fd);
                open_file(0);
                break;
        }
        check_size();
    }

    // Everything once more from a fresh open: what a later reader of the file gets.
    if (fsync(fd) < 0) fail("fsync: %s", strerror(errno));
    close(fd);
    open_file(0);
    check_size();
    history[op_number % HISTORY] = (struct Record){op_number, OP_READ, 0, model_size};
    do_read(0, model_size);
    close(fd);
    printf("fsx ok ops=%ld size=%" PRIu64 " fnv=%016" PRIx64 " mmap=%s\n", ops, model_size,
           fnv1a(model, model_size), use_mmap ? "yes" : "no");
    return 0;
}
