// In-process micro-benchmarks (Google Benchmark) of the host-side paths every exec and stream
// goes through: encoding a 64 KiB stdout frame, splitting a byte stream back into frames, and
// decoding its payload. bench/run.py runs this with --benchmark_format=json.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "protocol/frame.h"
#include "protocol/messages.h"

namespace {

using namespace msb::protocol;

std::vector<uint8_t> stdout_frame(size_t bytes) {
    ExecStdout out;
    out.data.assign(bytes, 0x5a);
    auto frame = encode_message(7, out);
    return frame.ok() ? std::move(frame).value() : std::vector<uint8_t>{};
}

void BM_EncodeStdoutFrame(benchmark::State& state) {
    ExecStdout out;
    out.data.assign(size_t(state.range(0)), 0x5a);
    for (auto _ : state) {
        auto frame = encode_message(7, out);
        if (!frame.ok()) state.SkipWithError("encode failed");
        benchmark::DoNotOptimize(frame);
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}
BENCHMARK(BM_EncodeStdoutFrame)->Arg(64 << 10);

// A stream of 16 frames fed in 4 KiB reads, as the relay sees a socket.
void BM_SplitAndDecodeStdoutStream(benchmark::State& state) {
    std::vector<uint8_t> stream;
    auto one = stdout_frame(size_t(state.range(0)));
    for (int i = 0; i < 16; i++) stream.insert(stream.end(), one.begin(), one.end());
    for (auto _ : state) {
        FrameDecoder decoder;
        size_t frames = 0;
        for (size_t at = 0; at < stream.size(); at += 4096) {
            std::span<const uint8_t> piece(stream.data() + at,
                                           std::min<size_t>(4096, stream.size() - at));
            auto fed = decoder.feed(piece, [&](RawFrame&& raw) {
                auto msg = decode_message(raw);
                if (!msg.ok()) return;
                auto payload = decode_payload<ExecStdout>(msg->payload);
                if (payload.ok()) frames++;
            });
            if (!fed.ok()) state.SkipWithError("corrupt stream");
        }
        if (frames != 16) state.SkipWithError("lost frames");
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(stream.size()));
}
BENCHMARK(BM_SplitAndDecodeStdoutStream)->Arg(64 << 10);

}  // namespace

BENCHMARK_MAIN();
