// Tests of the benchmarks' frame generator (bench/netbench.hpp), on the real
// kernel: `make bench` is not part of `make test`, but its shedding numbers
// are only as good as the frames it makes, so the generator is checked here.
// Both ways are exercised where the kernel allows: the pump always, live
// frames where the kernel runs them (the automatic choice takes them then).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "../../bench/netbench.hpp"
#include "../lib/netns.hpp"

namespace sluice::bench {
namespace {

using namespace std::chrono_literals;

// A client and a server namespace on a veth pair, the server veth dropping
// everything in native XDP: the frames it took in are its XDP drops.
class GeneratorBed {
public:
    GeneratorBed()
    {
        test::TestbedOptions o;
        o.ipv6 = false;
        o.client_xdp_pass = false;
        o.server_gro = true;
        tb_ = std::make_unique<test::Testbed>(o);
        attach_baseline(tb_->server_ns(), tb_->server_ifindex(), true);
        flow_ = {udp_frame(mac_of(tb_->client_ns(), tb_->client_dev()), mac_of(tb_->server_ns(), tb_->server_dev()),
                           tb_->server_ip4(), 9),
                 Generator::Rewrite::Ipv4Source, (198u << 24) | (19u << 16), 16};
    }

    uint64_t taken_in() { return ethtool_stats(tb_->server_ns(), tb_->server_dev())["rx_queue_0_xdp_drops"]; }

    Generator::Result run(Generator& gen, double seconds, uint64_t max_frames)
    {
        return gen.run(tb_->client_ns(), tb_->client_ifindex(), kGenCpu, flow_, seconds, max_frames);
    }

private:
    std::unique_ptr<test::Testbed> tb_;
    Generator::Flow flow_;
};

// What a run of at most `bound` frames and `seconds` did: frames sent, frames
// the server took in during it, and after it had returned.
struct Outcome {
    Generator::Result result;
    uint64_t taken_in = 0;
    uint64_t taken_in_after = 0;
};

Outcome run_and_watch(GeneratorBed& bed, Generator& gen, double seconds, uint64_t bound)
{
    Outcome out;
    uint64_t before = bed.taken_in();
    out.result = bed.run(gen, seconds, bound);
    std::this_thread::sleep_for(50ms);  // the rings drain
    uint64_t settled = bed.taken_in();
    out.taken_in = settled - before;
    std::this_thread::sleep_for(200ms);
    out.taken_in_after = bed.taken_in() - settled;
    return out;
}

TEST(BenchGenerator, ThePumpSendsExactlyTheFramesAskedForIntoTheVethAndStops)
{
    GeneratorBed bed;
    Generator pump(GeneratorChoice::Pump);
    ASSERT_EQ(pump.kind(), Generator::Kind::Pump);

    Outcome out = run_and_watch(bed, pump, 5.0, 20000);
    EXPECT_EQ(out.result.frames, 20000u);
    EXPECT_LT(out.result.seconds, 5.0);
    // Each frame sent is taken in, or dropped on a full ring (a receiver
    // that only drops is rarely that far behind).
    EXPECT_LE(out.taken_in, 20000u);
    EXPECT_GE(out.taken_in, 10000u);
    EXPECT_EQ(out.taken_in_after, 0u) << "frames still arrive after the run returned: the loop did not stop";
    std::printf("[ numbers ] pump: %lu frames in %.3f s, %lu taken in\n", static_cast<unsigned long>(out.result.frames),
                out.result.seconds, static_cast<unsigned long>(out.taken_in));
}

TEST(BenchGenerator, ThePumpStopsWhenItsTimeIsUpAndRunsAgain)
{
    GeneratorBed bed;
    Generator pump(GeneratorChoice::Pump);

    for (int run = 0; run < 2; run++) {  // the second run reuses the loop the first one built
        Outcome out = run_and_watch(bed, pump, 0.3, uint64_t{1} << 40);
        EXPECT_GE(out.result.seconds, 0.3);
        EXPECT_LT(out.result.seconds, 1.0);
        EXPECT_GT(out.result.frames, 10000u) << "run " << run;
        EXPECT_LE(out.taken_in, out.result.frames);
        EXPECT_GE(out.taken_in, out.result.frames / 2) << "run " << run;
        EXPECT_EQ(out.taken_in_after, 0u) << "run " << run << ": the loop did not stop";
    }
}

TEST(BenchGenerator, TheAutomaticChoiceMakesFramesOnThisKernel)
{
    GeneratorBed bed;
    Generator gen;
    std::printf("[ numbers ] automatic choice: %s%s\n", gen.kind() == Generator::Kind::LiveFrames ? "live frames" : "pump: ",
                gen.why_pump().c_str());
    Outcome out = run_and_watch(bed, gen, 5.0, 1u << 18);
    // Live frames run in chunks of 2^18, so both ways send exactly the bound.
    EXPECT_EQ(out.result.frames, 1u << 18);
    // Live frames can outrun a receiver in softirq: many may find its ring full.
    EXPECT_LE(out.taken_in, out.result.frames);
    EXPECT_GE(out.taken_in, out.result.frames / 10);
    EXPECT_EQ(out.taken_in_after, 0u);
}

}  // namespace
}  // namespace sluice::bench
