// Data path throughput: JPEG decode + mirror + normalise per thread, procedural rendering, and the
// loader end to end with 1 and 2 worker threads (RecordIO and procedural sources).
//
//   build/bin/data_bench [--benchmark_filter=Loader]

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "common/memory.h"
#include "data/inspect.h"
#include "data/jpeg.h"
#include "data/loader.h"
#include "data/recordio_dataset.h"
#include "data/synthetic.h"

namespace {

using namespace ffc::data;

SyntheticSpec spec_of(int size, int64_t classes = 2000) {
  SyntheticSpec s;
  s.num_classes = classes;
  s.max_images = 20;
  s.image_size = size;
  s.seed = 1;
  return s;
}

// 64 JPEGs of 112x112, as aligned face crops are.
const std::vector<std::vector<uint8_t>>& jpegs() {
  static const auto* v = [] {
    auto* out = new std::vector<std::vector<uint8_t>>();
    const SyntheticSource src(spec_of(112));
    std::vector<uint8_t> px(112 * 112 * 3);
    std::vector<float> scratch;
    JpegEncoder enc;
    for (int i = 0; i < 64; ++i) {
      src.render(i, 0, px.data(), scratch);
      out->emplace_back();
      enc.encode(px.data(), 112, 112, 95, out->back());
    }
    return out;
  }();
  return *v;
}

void BM_JpegDecodeFlipNormalize(benchmark::State& state) {
  const auto& js = jpegs();
  JpegDecoder dec;
  std::vector<uint8_t> px(112 * 112 * 3);
  std::vector<float> out(3 * 112 * 112);
  size_t k = 0;
  for (auto _ : state) {
    const auto& j = js[k++ % js.size()];
    dec.decode(j.data(), j.size(), 112, 112, ColorOrder::kRgb, false, px.data(), "bench");
    for (int y = 0; y < 112; ++y) {
      for (int x = 0; x < 112; ++x) {
        const uint8_t* p = &px[(y * 112 + (111 - x)) * 3];
        for (int c = 0; c < 3; ++c) {
          out[c * 112 * 112 + y * 112 + x] = (p[c] - 127.5f) / 128.0f;
        }
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("112x112 JPEG q95, 1 thread");
}
BENCHMARK(BM_JpegDecodeFlipNormalize)->Unit(benchmark::kMicrosecond);

void BM_SyntheticRender(benchmark::State& state) {
  const int size = static_cast<int>(state.range(0));
  const SyntheticSource src(spec_of(size));
  std::vector<uint8_t> px(static_cast<size_t>(size) * size * 3);
  std::vector<float> scratch;
  int64_t k = 0;
  for (auto _ : state) {
    src.render(k % 1000, k / 1000, px.data(), scratch);
    ++k;
    benchmark::DoNotOptimize(px.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::to_string(size) + "x" + std::to_string(size) + ", 1 thread");
}
BENCHMARK(BM_SyntheticRender)->Arg(32)->Arg(112)->Unit(benchmark::kMicrosecond);

// A packed 112x112 RecordIO dataset in a temporary folder, made once.
std::shared_ptr<const ImageSource> packed_dataset() {
  static std::shared_ptr<const ImageSource> ds = [] {
    const auto dir = std::filesystem::temp_directory_path() / "ffc-data-bench";
    std::filesystem::remove_all(dir);
    pack_source(SyntheticSource(spec_of(112, 1000)), dir.string(), 95, nullptr);
    RecordDatasetOptions o;
    o.image_size = 112;
    return std::make_shared<RecordDataset>(dir.string(), o);
  }();
  return ds;
}

void run_loader(benchmark::State& state, std::shared_ptr<const ImageSource> src) {
  PlannerOptions po;
  po.batch_size = 64;
  auto planner = std::make_shared<InstancePlanner>(*src, po);
  Loader loader(src, planner, LoaderOptions{static_cast<int>(state.range(0)), 4});
  int64_t step = 0;
  loader.get(step++);  // warm-up: first touch of the batch buffers
  for (auto _ : state) {
    benchmark::DoNotOptimize(loader.get(step++).images[0].data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * po.batch_size);
}

void BM_LoaderRecordIO(benchmark::State& state) {
  run_loader(state, packed_dataset());
  state.SetLabel("112x112 JPEG, batch 64, " + std::to_string(state.range(0)) + " thread(s)");
}
BENCHMARK(BM_LoaderRecordIO)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_LoaderSynthetic(benchmark::State& state) {
  run_loader(state, std::make_shared<SyntheticSource>(spec_of(static_cast<int>(state.range(1)))));
  state.SetLabel(std::to_string(state.range(1)) + "x" + std::to_string(state.range(1)) +
                 " procedural, batch 64, " + std::to_string(state.range(0)) + " thread(s)");
}
BENCHMARK(BM_LoaderSynthetic)
    ->Args({1, 32})
    ->Args({2, 32})
    ->Args({1, 112})
    ->Args({2, 112})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  ffc::configure_allocator();
  at::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
