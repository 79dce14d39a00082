// Parallel checkpoint files at 1, 2 and 4 ranks: sharded tensors land in global layout whatever
// the number of ranks, read back by rows or strided rows; checksums verify; the folder keeps the
// newest checkpoints and `latest` names the newest.

#include "ckpt/checkpoint.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>

#include "support/mpi_env.h"
#include "support/temp_dir.h"

namespace ffc::ckpt {
namespace {

using test::world;

constexpr int64_t kRows = 11;

// Row i of the global [kRows, 3] tensor holds i*10 + column.
at::Tensor global_rows() {
  return (at::arange(kRows, at::kFloat).unsqueeze(1) * 10 + at::arange(3, at::kFloat)).contiguous();
}

// A folder every rank agrees on (rank 0's temporary folder).
std::string shared_dir(test::TempDir& mine) {
  std::vector<char> path(4096, 0);
  std::snprintf(path.data(), path.size(), "%s", mine.path().c_str());
  at::Tensor t = at::from_blob(path.data(), {4096}, at::kByte).clone();
  world().broadcast(t, 0);
  return std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()));
}

TEST(Checkpoint, GlobalLayoutWhateverTheRanks) {
  test::TempDir tmp;
  const std::string dir = shared_dir(tmp);
  const std::string path = dir + "/layout.h5";
  const int p = world().size();
  const int r = world().rank();
  const at::Tensor all = global_rows();
  // Contiguous blocks (FC) and strided rows (the pool).
  const int64_t first = kRows / p * r + std::min<int64_t>(r, kRows % p);
  const int64_t count = kRows / p + (r < kRows % p ? 1 : 0);
  const at::Tensor strided = all.index_select(0, at::arange(r, kRows, p, at::kLong));
  {
    CheckpointWriter w(path, world());
    w.attribute("step", int64_t{7});
    w.replicated("meta/scalar", at::tensor(42, at::kLong).squeeze());
    w.replicated("meta/flags", at::tensor({1, 0, 1}, at::kByte));
    w.replicated("meta/empty", at::empty({0}, at::kLong));
    w.rows("head/blocks", all.narrow(0, first, count), kRows, first);
    w.rows("head/strided", strided, kRows, r, p);
    w.bytes("config", "lr: 0.1\n");
    w.close();
  }
  world().barrier();
  // Serial reading sees the global tensors.
  if (r == 0) {
    const CheckpointReader s(path);
    EXPECT_EQ(s.int_attribute("step"), 7);
    EXPECT_TRUE(at::equal(s.read("/head/blocks"), all));
    EXPECT_TRUE(at::equal(s.read("/head/strided"), all));
    EXPECT_EQ(s.read("/meta/scalar").item<int64_t>(), 42);
    EXPECT_EQ(s.read("/meta/flags").sum().item<int64_t>(), 2);
    EXPECT_EQ(s.read("/meta/empty").numel(), 0);
    EXPECT_EQ(s.bytes("/config"), "lr: 0.1\n");
    EXPECT_EQ(verify_checkpoint(path), 6);
  }
  world().barrier();
  // Every rank reads its own rows back, in either layout.
  const CheckpointReader rd(path, world());
  at::Tensor mine = at::empty({count, 3});
  rd.read_rows_into("/head/blocks", mine, first);
  EXPECT_TRUE(at::equal(mine, all.narrow(0, first, count)));
  at::Tensor mine_strided = at::empty({strided.size(0), 3});
  rd.read_rows_into("/head/strided", mine_strided, r, p);
  EXPECT_TRUE(at::equal(mine_strided, strided));
  // A shape mismatch names both shapes.
  at::Tensor wrong = at::empty({2, 4});
  try {
    rd.read_into("/head/blocks", wrong);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("[11, 3]"), std::string::npos) << e.what();
  }
  world().barrier();
}

TEST(CheckpointFolder, CommitLatestAndKeep) {
  if (world().rank() != 0) {
    return;
  }
  test::TempDir tmp;
  auto comm = comm::make_single_process_communicator();
  for (int64_t step : {10, 20, 30, 40}) {
    const std::string tmp_path = tmp.file(".x.partial");
    {
      CheckpointWriter w(tmp_path, *comm);
      w.attribute("step", step);
      w.close();
    }
    commit_checkpoint(tmp_path, tmp.path(), checkpoint_file_name(step), 2);
  }
  const auto all = list_checkpoints(tmp.path());
  ASSERT_EQ(all.size(), 2u);  // the newest two kept
  EXPECT_NE(all[0].find("step_000000040.h5"), std::string::npos);
  EXPECT_NE(all[1].find("step_000000030.h5"), std::string::npos);
  EXPECT_EQ(*latest_checkpoint(tmp.path()), tmp.file("step_000000040.h5"));
  std::ofstream(tmp.file(".step_000000050.h5.partial")) << "half";  // never a candidate
  EXPECT_EQ(resume_candidates(tmp.path()).size(), 2u);
  // An incomplete file (no "complete" attribute) is refused.
  {
    h5::ParallelFile f = h5::ParallelFile::create(tmp.file("step_000000060.h5"), MPI_COMM_NULL);
    f.write_attribute("format", std::string(kFormatName));
    f.write_attribute("format_version", kFormatVersion);
    f.close();
  }
  try {
    CheckpointReader r(tmp.file("step_000000060.h5"));
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("incomplete"), std::string::npos) << e.what();
  }
}

// What a save reserves (CountOnly's needed_bytes) is what the file takes, within 3% above: for a
// state of many small tensors, where HDF5's metadata is most of the file (a tiny net's backbone,
// as a small FFC run saves it), and for one of a few large ones, where the chunks' rounding is
// (an FC head whose rows do not fill their last chunk).
void write_state(CheckpointWriter& w, int64_t small, int64_t rows, int64_t dim) {
  const int p = world().size();
  const int r = world().rank();
  for (const char* key : {"step", "epoch", "seed", "num_classes", "pool_size", "world_size"}) {
    w.attribute(key, int64_t{3});  // a checkpoint's root attributes
  }
  w.attribute("network", std::string("tiny"));
  for (int64_t i = 0; i < small; ++i) {
    // BatchNorm vectors and conv weights of 1 to 300 elements, under names as long as IResNet's,
    // with their momentum and, for every fourth, a scalar (num_batches_tracked).
    const int64_t n = 1 + (i * 37) % 300;
    const at::Tensor t =
        i % 5 == 0 ? at::ones({n, 1, 1, 1}, at::kFloat) : at::ones({n}, at::kFloat);
    const std::string name = "layer" + std::to_string(i % 4) + "." + std::to_string(i) +
                             (i % 5 == 0 ? ".downsample.0.weight" : ".bn2.running_mean");
    w.replicated("probe/" + name, t);
    w.replicated("optimizer/momentum/" + name, t);
    if (i % 4 == 0) {
      w.replicated("probe/" + name + ".num_batches_tracked", at::tensor(5, at::kLong).squeeze());
    }
  }
  w.replicated("probe/bn.num_batches_tracked", at::tensor(5, at::kLong).squeeze());
  if (rows > 0) {
    const int64_t first = rows / p * r + std::min<int64_t>(r, rows % p);
    const int64_t count = rows / p + (r < rows % p ? 1 : 0);
    const at::Tensor local = at::ones({count, dim}, at::kFloat);
    w.rows("head/weight", local, rows, first);
    w.rows("head/momentum", local, rows, first);
  }
  w.bytes("config", std::string(3000, 'x'));
  w.bytes("metrics/last", std::string(400, 'y'));
}

TEST(Checkpoint, ReservesWhatTheFileTakes) {
  test::TempDir tmp;
  const std::string dir = shared_dir(tmp);
  struct Case {
    const char* name;
    int64_t small, rows, dim;
  };
  for (const Case c : {Case{"many small tensors", 150, 0, 0}, Case{"an FC head", 20, 20000, 128},
                       Case{"a head of one chunk", 20, 3000, 64}}) {
    CheckpointWriter count{CheckpointWriter::CountOnly{}};
    write_state(count, c.small, c.rows, c.dim);
    const std::string path = dir + "/reserve.h5";
    {
      CheckpointWriter w(path, world());
      w.reserve(count.needed_bytes());
      write_state(w, c.small, c.rows, c.dim);
      w.close();
    }
    world().barrier();
    if (world().rank() == 0) {
      struct stat st {};
      ASSERT_EQ(::stat(path.c_str(), &st), 0);
      const double size = static_cast<double>(st.st_size);
      const double need = static_cast<double>(count.needed_bytes());
      EXPECT_GE(need, size) << c.name << ": reserves " << need << " B for a file of " << size;
      EXPECT_LE(need, size * 1.03) << c.name << ": reserves " << need << " B for a file of " << size
                                   << " (" << count.counted_datasets() << " datasets)";
      // What was set aside beyond the end is given back: the disk holds about the file.
      EXPECT_LE(static_cast<double>(st.st_blocks) * 512, size + 65536) << c.name;
      std::remove(path.c_str());
    }
    world().barrier();
  }
}

}  // namespace
}  // namespace ffc::ckpt
