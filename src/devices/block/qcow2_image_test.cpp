// Qcow2DiskImage against qemu-img / qemu-io (Debian qemu-utils) as the oracle: images that QEMU
// wrote are read here, images written here are read back and checked by QEMU.
#include "devices/block/qcow2_image.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

namespace msb::devices {
namespace {

namespace fs = std::filesystem;

struct Outcome {
    int status = -1;
    std::string output;
};

Outcome run(const std::string& command) {
    Outcome r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (!p) return r;
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) r.output.append(buffer, n);
    int status = ::pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

class Qcow2Test : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(::access("/usr/bin/qemu-img", X_OK), 0)
            << "qemu-img is the disk-format oracle: scripts/setup installs qemu-utils";
        char name[] = "/tmp/msb-qcow2-XXXXXX";
        ASSERT_NE(::mkdtemp(name), nullptr);
        dir = name;
    }
    void TearDown() override { fs::remove_all(dir); }

    std::string path(const std::string& name) const { return (fs::path(dir) / name).string(); }
    void qemu(const std::string& command) {
        Outcome r = run(command);
        ASSERT_EQ(r.status, 0) << command << "\n" << r.output;
    }
    // Creates `name` from `content` with qemu-img convert (extra: e.g. "-c -o compat=0.10").
    std::string qcow2_from(const std::string& name, const std::vector<uint8_t>& content,
                           const std::string& extra = "") {
        write_file(path(name + ".src"), content);
        qemu("qemu-img convert -f raw -O qcow2 " + extra + " " + path(name + ".src") + " " +
             path(name));
        return path(name);
    }
    std::vector<uint8_t> qemu_raw(const std::string& image) {
        const std::string out = image + ".raw";
        Outcome r = run("qemu-img convert -O raw " + image + " " + out);
        EXPECT_EQ(r.status, 0) << r.output;
        auto bytes = read_file(out);
        fs::remove(out);
        return bytes;
    }
    void expect_check_clean(const std::string& image) {
        Outcome r = run("qemu-img check " + image);
        EXPECT_EQ(r.status, 0) << r.output;
        EXPECT_EQ(r.output.find("leaked"), std::string::npos) << r.output;
    }
    std::vector<uint8_t> read_all(DiskImage& disk) {
        std::vector<uint8_t> out(disk.size());
        EXPECT_TRUE(disk.read_at(0, out).ok());
        return out;
    }

    std::string dir;
};

TEST_F(Qcow2Test, ReadsWhatQemuWroteForEveryVersionAndClusterSize) {
    const auto content = random_bytes(3 << 20, 1);
    for (const std::string options :
         {"-o compat=0.10", "-o compat=1.1", "-o cluster_size=512", "-o cluster_size=2M",
          "-o cluster_size=4k,refcount_bits=1", "-o refcount_bits=64"}) {
        SCOPED_TRACE(options);
        // Holes: a stretch of zeroes that qemu-img leaves unallocated.
        auto sparse = content;
        std::fill(sparse.begin() + (1 << 20), sparse.begin() + (2 << 20), 0);
        auto image = qcow2_from("a.qcow2", sparse, options);
        auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadOnly));
        ASSERT_EQ(disk->size(), sparse.size());
        EXPECT_EQ(read_all(*disk), sparse);
        // An unaligned read across cluster boundaries.
        std::vector<uint8_t> part(100000);
        MUST(disk->read_at(12345, part));
        EXPECT_TRUE(std::equal(part.begin(), part.end(), sparse.begin() + 12345));
    }
}

TEST_F(Qcow2Test, ReadsQemuIoWritesAndZeroClusters) {
    const std::string image = path("io.qcow2");
    qemu("qemu-img create -f qcow2 " + image + " 8M");
    qemu(
        "qemu-io -f qcow2 -c 'write -P 0xab 65536 131072' -c 'write -P 0x5c 1000448 4096' "
        "-c 'write -P 0x11 4M 1M' -c 'write -z 4M 64k' " +
        image);
    auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadOnly));
    std::vector<uint8_t> expected(8 << 20, 0);
    std::fill_n(expected.begin() + 65536, 131072, 0xab);
    std::fill_n(expected.begin() + 1000448, 4096, 0x5c);
    std::fill_n(expected.begin() + (4 << 20) + 65536, (1 << 20) - 65536, 0x11);
    EXPECT_EQ(read_all(*disk), expected);
}

// Random writes of every size and alignment through our backend, compared byte for byte with
// what qemu-img reads; `qemu-img check` must find no errors and no leaks. 512-byte clusters
// make the image outgrow its refcount table several times.
TEST_F(Qcow2Test, RandomWritesReadBackByQemuAndTheImageStaysClean) {
    for (const std::string options :
         {"cluster_size=512", "compat=0.10", "cluster_size=4k,refcount_bits=1",
          "cluster_size=64k,refcount_bits=64"}) {
        SCOPED_TRACE(options);
        const std::string image = path("rw.qcow2");
        fs::remove(image);
        qemu("qemu-img create -f qcow2 -o " + options + " " + image + " 24M");
        std::vector<uint8_t> model(24 << 20, 0);
        {
            auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadWrite));
            std::mt19937 rng(7);
            for (int i = 0; i < 400; i++) {
                const uint64_t length = 1 + rng() % (i % 10 == 0 ? 1200000 : 9000);
                const uint64_t offset = rng() % (model.size() - length);
                if (i % 7 == 3) {  // discard or write zeroes, sector-aligned as from a guest
                    const uint64_t start = offset & ~uint64_t{511};
                    const uint64_t n = (length + 511) & ~uint64_t{511};
                    MUST(i % 2 ? disk->discard(start, n) : disk->write_zeroes(start, n));
                    std::fill_n(model.begin() + start, n, 0);
                    continue;
                }
                auto data = random_bytes(length, rng());
                MUST(disk->write_at(offset, data));
                std::copy(data.begin(), data.end(), model.begin() + offset);
            }
            EXPECT_EQ(read_all(*disk), model);
            MUST(disk->flush());
            if (options == "cluster_size=512") {  // the table moved: 1 cluster held 64 entries
                EXPECT_GT(disk->header().refcount_table_clusters, 1u);
            }
        }
        EXPECT_EQ(qemu_raw(image), model);
        expect_check_clean(image);
    }
}

TEST_F(Qcow2Test, WritesIntoCompressedClustersMoveThemOutAndFreeTheOldSpace) {
    auto content = random_bytes(2 << 20, 3);
    for (size_t i = 0; i < content.size(); i++)  // compressible: runs of the same byte
        if ((i / 4096) % 2) content[i] = static_cast<uint8_t>(i / 4096);
    auto image = qcow2_from("c.qcow2", content, "-c");
    const std::string check = run("qemu-img check --output=json " + image).output;
    ASSERT_NE(check.find("\"compressed-clusters\": 32"), std::string::npos) << check;
    {
        auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadOnly));
        EXPECT_EQ(read_all(*disk), content);
    }
    {
        auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadWrite));
        auto patch = random_bytes(70000, 4);
        MUST(disk->write_at(100000, patch));
        std::copy(patch.begin(), patch.end(), content.begin() + 100000);
        MUST(disk->write_at(1 << 20, std::span<const uint8_t>(patch).first(65536)));
        std::copy_n(patch.begin(), 65536, content.begin() + (1 << 20));
        EXPECT_EQ(read_all(*disk), content);
    }
    EXPECT_EQ(qemu_raw(image), content);
    expect_check_clean(image);
}

TEST_F(Qcow2Test, BackingChainsAreReadAndNeverWritten) {
    auto base_content = random_bytes(4 << 20, 5);
    auto base = qcow2_from("base.qcow2", base_content);
    auto raw_base = path("raw-base.img");
    write_file(raw_base, random_bytes(1 << 20, 6));  // smaller than the overlays
    const std::string mid = path("mid.qcow2"), top = path("top.qcow2"), over_raw = path("o.qcow2");
    qemu("qemu-img create -f qcow2 -b base.qcow2 -F qcow2 " + mid + " 6M");  // relative name
    qemu("qemu-io -f qcow2 -c 'write -P 0x77 2M 64k' " + mid);
    qemu("qemu-img create -f qcow2 -b " + mid + " -F qcow2 " + top);
    qemu("qemu-img create -f qcow2 -b " + raw_base + " -F raw " + over_raw + " 2M");
    const auto base_before = read_file(base), mid_before = read_file(mid);

    std::vector<uint8_t> expected(6 << 20, 0);
    std::copy(base_content.begin(), base_content.end(), expected.begin());
    std::fill_n(expected.begin() + (2 << 20), 65536, 0x77);
    {
        auto disk = MUST(Qcow2DiskImage::open(top, DiskAccess::ReadWrite));
        EXPECT_EQ(read_all(*disk), expected);
        auto patch = random_bytes(5000, 8);  // partial clusters: copy-on-write from the chain
        MUST(disk->write_at(3 << 20, patch));
        std::copy(patch.begin(), patch.end(), expected.begin() + (3 << 20));
        MUST(disk->write_zeroes(65536, 65536));  // must hide the backing data
        std::fill_n(expected.begin() + 65536, 65536, 0);
        EXPECT_EQ(read_all(*disk), expected);
    }
    EXPECT_EQ(qemu_raw(top), expected);
    expect_check_clean(top);
    EXPECT_EQ(read_file(base), base_before);
    EXPECT_EQ(read_file(mid), mid_before);

    auto disk = MUST(Qcow2DiskImage::open(over_raw, DiskAccess::ReadOnly));
    auto got = read_all(*disk);
    auto raw_bytes = read_file(raw_base);
    EXPECT_TRUE(std::equal(raw_bytes.begin(), raw_bytes.end(), got.begin()));
    EXPECT_TRUE(std::all_of(got.begin() + (1 << 20), got.end(), [](uint8_t b) { return b == 0; }));
}

TEST_F(Qcow2Test, DiscardAndWriteZeroesReadAsZeroesAndGiveSpaceBack) {
    for (const std::string compat : {"1.1", "0.10"}) {
        SCOPED_TRACE(compat);
        auto content = random_bytes(4 << 20, 9);
        const std::string name = "z" + compat + ".qcow2";
        auto image = qcow2_from(name, content, "-o compat=" + compat);
        const auto allocated_before = fs::file_size(image);
        {
            auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadWrite));
            EXPECT_TRUE(disk->supports_discard());
            MUST(disk->discard(0, 2 << 20));
            MUST(disk->write_zeroes((2 << 20) + 100, 70000));  // partial clusters too
            std::fill_n(content.begin(), 2 << 20, 0);
            std::fill_n(content.begin() + (2 << 20) + 100, 70000, 0);
            EXPECT_EQ(read_all(*disk), content);
            // A zeroed cluster written again becomes data again.
            MUST(disk->write_at(4096, std::vector<uint8_t>(10, 0xee)));
            std::fill_n(content.begin() + 4096, 10, 0xee);
            MUST(disk->flush());
        }
        EXPECT_EQ(qemu_raw(image), content);
        expect_check_clean(image);
        Outcome du = run("du -k --apparent-size " + image + "; du -k " + image);
        struct stat st {};
        ASSERT_EQ(::stat(image.c_str(), &st), 0);
        EXPECT_LT(uint64_t(st.st_blocks) * 512, allocated_before - (1 << 20)) << du.output;
    }
}

TEST_F(Qcow2Test, ReadOnlyImagesRefuseWritesAndSkipSyncs) {
    auto image = qcow2_from("ro.qcow2", random_bytes(1 << 20, 10));
    const auto before = read_file(image);
    auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadOnly));
    EXPECT_FALSE(disk->supports_discard());
    auto w = disk->write_at(0, std::vector<uint8_t>(512, 1));
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().code(), EROFS);
    EXPECT_EQ(disk->write_zeroes(0, 512).error().code(), EROFS);
    EXPECT_TRUE(disk->flush().ok());
    EXPECT_EQ(read_file(image), before);
}

TEST_F(Qcow2Test, OpenDiskImagePicksTheFormatByName) {
    auto content = random_bytes(1 << 20, 11);
    auto image = qcow2_from("f.qcow2", content);
    auto q = MUST(open_disk_image(image, "qcow2", DiskAccess::ReadOnly));
    EXPECT_EQ(read_all(*q), content);
    auto raw = MUST(open_disk_image(image, "raw", DiskAccess::ReadOnly));
    EXPECT_EQ(raw->size(), fs::file_size(image));
    auto bad = open_disk_image(image, "iso", DiskAccess::ReadOnly);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message(), "unknown disk image format: iso");
    auto not_qcow2 = open_disk_image(path("f.qcow2.src"), "qcow2", DiskAccess::ReadOnly);
    ASSERT_FALSE(not_qcow2.ok());
    EXPECT_NE(not_qcow2.error().message().find("not a valid qcow2 image: bad magic"),
              std::string::npos)
        << not_qcow2.error().message();
}

// Patches `length` big-endian bytes at `offset` of the file.
void patch_be(const std::string& file, uint64_t offset, uint64_t value, int length) {
    auto bytes = read_file(file);
    for (int i = length - 1; i >= 0; i--, value >>= 8)
        bytes[offset + static_cast<uint64_t>(i)] = static_cast<uint8_t>(value);
    write_file(file, bytes);
}

std::string open_error(const std::string& image, DiskAccess access) {
    auto r = Qcow2DiskImage::open(image, access);
    return r.ok() ? "opened" : r.error().message();
}

TEST_F(Qcow2Test, RefusesWhatItCannotHandleWithAClearError) {
    const std::string luks = path("luks.qcow2");
    // qemu-img times PBKDF2 on its own thread's CPU clock to pick the LUKS iteration count and
    // gives up ("Unable to get accurate CPU usage") when a trial measures 0 ms, which happened
    // once with guests loading both cores: a few attempts.
    const std::string create_luks =
        "qemu-img create --object secret,id=s,data=pw -f qcow2 -o "
        "encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10 " +
        luks + " 1M";
    Outcome created = run(create_luks);
    for (int attempt = 1; attempt < 5 && created.status != 0; ++attempt) created = run(create_luks);
    ASSERT_EQ(created.status, 0) << create_luks << "\n" << created.output;
    EXPECT_NE(
        open_error(luks, DiskAccess::ReadOnly).find("encrypted qcow2 images are not supported"),
        std::string::npos);

    const std::string ext = path("ext.qcow2");
    qemu("qemu-img create -f qcow2 -o extended_l2=on " + ext + " 1M");
    EXPECT_NE(open_error(ext, DiskAccess::ReadOnly).find("extended L2"), std::string::npos);

    const std::string zstd = path("zstd.qcow2");
    if (run("qemu-img create -f qcow2 -o compression_type=zstd " + zstd + " 1M").status == 0) {
        EXPECT_NE(open_error(zstd, DiskAccess::ReadOnly).find("zstd"), std::string::npos);
    }

    const std::string unknown = path("unknown.qcow2");
    qemu("qemu-img create -f qcow2 " + unknown + " 1M");
    patch_be(unknown, 72, uint64_t{1} << 40, 8);
    EXPECT_NE(open_error(unknown, DiskAccess::ReadOnly).find("incompatible qcow2 features"),
              std::string::npos);

    const std::string snap = path("snap.qcow2");
    qemu("qemu-img create -f qcow2 " + snap + " 1M");
    qemu("qemu-img snapshot -c first " + snap);
    EXPECT_NE(open_error(snap, DiskAccess::ReadWrite).find("internal snapshots"),
              std::string::npos);
    EXPECT_EQ(open_error(snap, DiskAccess::ReadOnly), "opened");

    const std::string dirty = path("dirty.qcow2");
    qemu("qemu-img create -f qcow2 " + dirty + " 1M");
    patch_be(dirty, 72, 1, 8);
    EXPECT_NE(open_error(dirty, DiskAccess::ReadWrite).find("qemu-img check -r all"),
              std::string::npos);
    EXPECT_EQ(open_error(dirty, DiskAccess::ReadOnly), "opened");

    const std::string unnamed = path("unnamed.qcow2");
    qemu("qemu-img create -f qcow2 " + unnamed + " 1M");
    {  // a backing file name without a format, written by hand (qemu-img 7 always records it)
        auto bytes = read_file(unnamed);
        const std::string name = "base.raw";
        std::copy(name.begin(), name.end(), bytes.begin() + 4096 - 64);
        write_file(unnamed, bytes);
        patch_be(unnamed, 8, 4096 - 64, 8);
        patch_be(unnamed, 16, name.size(), 4);
        write_file(path("base.raw"), std::vector<uint8_t>(1 << 20, 7));
    }
    auto no_format = open_error(unnamed, DiskAccess::ReadOnly);
    EXPECT_NE(no_format.find("is not recorded; record it with `qemu-img rebase -u"),
              std::string::npos)
        << no_format;

    // a → b → a, made with an unsafe rebase.
    const std::string a = path("a.qcow2"), b = path("b.qcow2");
    qemu("qemu-img create -f qcow2 " + b + " 1M");
    qemu("qemu-img create -f qcow2 -b b.qcow2 -F qcow2 " + a + " 1M");
    qemu("qemu-img rebase -u -b a.qcow2 -F qcow2 " + b);
    auto looped = open_error(a, DiskAccess::ReadOnly);
    EXPECT_NE(looped.find("loops back"), std::string::npos) << looped;

    const std::string bad = path("bad.qcow2");
    qemu("qemu-img create -f qcow2 " + bad + " 1M");
    patch_be(bad, 4, 4, 4);
    EXPECT_NE(open_error(bad, DiskAccess::ReadOnly).find("version 4"), std::string::npos);
    patch_be(bad, 4, 3, 4);
    patch_be(bad, 20, 30, 4);
    EXPECT_NE(open_error(bad, DiskAccess::ReadOnly).find("cluster_bits 30"), std::string::npos);
    patch_be(bad, 20, 16, 4);
    patch_be(bad, 24, uint64_t{1} << 50, 8);  // size far beyond what the L1 table maps
    EXPECT_NE(open_error(bad, DiskAccess::ReadOnly).find("cannot map"), std::string::npos);
    patch_be(bad, 24, 1 << 20, 8);
    const uint64_t l1 = load_be64(read_file(bad).data() + 40);
    patch_be(bad, 40, 0, 8);  // L1 table on the header
    EXPECT_NE(open_error(bad, DiskAccess::ReadWrite).find("overlaps the header"),
              std::string::npos);
    patch_be(bad, 40, load_be64(read_file(bad).data() + 48), 8);  // on the refcount table
    EXPECT_NE(open_error(bad, DiskAccess::ReadWrite).find("overlaps the refcount table"),
              std::string::npos);
    patch_be(bad, 40, l1, 8);
    EXPECT_EQ(open_error(bad, DiskAccess::ReadWrite), "opened");
    patch_be(bad, 40, 0x7fffffff0000ull, 8);  // L1 table past the end of the file
    EXPECT_NE(open_error(bad, DiskAccess::ReadOnly).find("past the end of the file"),
              std::string::npos);
}

// An image whose L2 entry points a data cluster at the L1 table: a guest write there must not
// reach the metadata (it could then point tables, or the header's backing file name, anywhere).
TEST_F(Qcow2Test, WritesNeverLandOnTheHeaderWhateverTheTablesSay) {
    const std::string image = path("evil.qcow2");
    qemu("qemu-img create -f qcow2 " + image + " 1M");
    qemu("qemu-io -f qcow2 -c 'write -P 0x42 0 64k' " + image);
    // Find the L2 table from the L1 table and point entry 0 at the L1 table (COPIED set).
    auto bytes = read_file(image);
    const uint64_t l1 = load_be64(bytes.data() + 40);
    const uint64_t l2 = load_be64(bytes.data() + l1) & 0x00fffffffffffe00ull;
    patch_be(image, l2, l1 | (1ull << 63), 8);
    const auto before = read_file(image);
    auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadWrite));
    auto w = disk->write_at(0, std::vector<uint8_t>(512, 0x99));
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().code(), EIO);
    EXPECT_NE(w.error().message().find("overlaps the header"), std::string::npos);
    auto after = read_file(image);
    EXPECT_EQ(after, before);
}

// Dropping a mapping must not free (punch out) the header or a table either: a compressed entry
// whose data "starts" in the header, a shared data entry at the L1 table.
TEST_F(Qcow2Test, FreesNeverPunchTheHeaderOrTheTables) {
    for (int variant = 0; variant < 2; variant++) {
        SCOPED_TRACE(variant);
        const std::string image = path("evil-free.qcow2");
        fs::remove(image);
        qemu("qemu-img create -f qcow2 " + image + " 1M");
        qemu("qemu-io -f qcow2 -c 'write -P 0x42 0 64k' " + image);
        auto bytes = read_file(image);
        const uint64_t l1 = load_be64(bytes.data() + 40);
        const uint64_t l2 = load_be64(bytes.data() + l1) & 0x00fffffffffffe00ull;
        patch_be(image, l2, variant == 0 ? (1ull << 62) | 0x200 : l1, 8);
        const auto before = read_file(image);
        {
            auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadWrite));
            auto w = disk->write_at(0, std::vector<uint8_t>(65536, 0x99));  // a whole cluster
            EXPECT_FALSE(w.ok());
            EXPECT_FALSE(disk->flush().ok());
        }
        auto after = read_file(image);
        EXPECT_TRUE(std::equal(before.begin(), before.begin() + 65536 * 2, after.begin()));
        EXPECT_EQ(open_error(image, DiskAccess::ReadOnly), "opened");
    }
}

// The file system refuses to grow the image at every point of a run of writes (RLIMIT_FSIZE):
// the write fails, the image then refuses writes, and what is on disk is never corrupt —
// `qemu-img check` may find leaked clusters, never a referenced cluster counted 0.
TEST_F(Qcow2Test, AWriteThatFailsMidwayNeverCorruptsTheImage) {
    ::signal(SIGXFSZ, SIG_IGN);
    const std::string image = path("full.qcow2");
    int failures = 0;
    // Small cuts fail L2-table and refcount-block allocations; cuts around 8 MiB fail the first
    // move of the refcount table (with 512-byte clusters one table cluster covers 8 MiB).
    std::vector<uint64_t> cuts;
    for (uint64_t cut = 4096; cut < 120 * 1024; cut += 8192) cuts.push_back(cut);
    for (uint64_t cut = (8 << 20) - 65536; cut < (8 << 20) + 196608; cut += 5120)
        cuts.push_back(cut);
    for (uint64_t cut : cuts) {
        fs::remove(image);
        qemu("qemu-img create -q -f qcow2 -o cluster_size=512 " + image + " 64M");
        rlimit old{};
        ::getrlimit(RLIMIT_FSIZE, &old);
        Status last;
        {
            auto disk = MUST(Qcow2DiskImage::open(image, DiskAccess::ReadWrite));
            rlimit limit = old;
            limit.rlim_cur = cut;
            ::setrlimit(RLIMIT_FSIZE, &limit);
            std::mt19937 rng(static_cast<uint32_t>(cut));
            const std::vector<uint8_t> data(65536, 1);
            for (int i = 0; i < 400 && last.ok(); i++)
                last = disk->write_at((rng() % (63 * 2048)) * 512, data);
            if (!last.ok()) {
                failures++;
                auto again = disk->write_at(0, std::vector<uint8_t>(512, 2));
                EXPECT_FALSE(again.ok());
                EXPECT_NE(again.error().message().find("refuses writes"), std::string::npos);
            }
            ::setrlimit(RLIMIT_FSIZE, &old);
        }
        Outcome check = run("qemu-img check " + image);
        EXPECT_TRUE(check.status == 0 || check.status == 3) << "cut " << cut << "\n"
                                                            << check.output;
        EXPECT_EQ(check.output.find("ERROR"), std::string::npos) << "cut " << cut;
    }
    EXPECT_GT(failures, 50);
}

}  // namespace
}  // namespace msb::devices
