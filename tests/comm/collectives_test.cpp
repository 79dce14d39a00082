// Every collective of the MPI communicator against a single-process reference: each rank builds
// every rank's input deterministically, so it can compute the expected result by itself. Values
// are small integers, exact in every dtype, so sums do not depend on the reduction order.

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "comm/communicator.h"
#include "common/error.h"
#include "support/mpi_env.h"

namespace ffc::comm {
namespace {

using test::world;

const std::vector<at::ScalarType> kDtypes = {at::kFloat, at::kDouble, at::kInt,  at::kLong,
                                             at::kByte,  at::kChar,   at::kHalf, at::kBFloat16};

// Rank r's input: `rows` rows of `cols`, values in [-11, 11] (or [0, 22] for uint8).
at::Tensor input_of(int r, int64_t rows, int64_t cols, at::ScalarType dtype, int salt = 0) {
  at::Tensor idx = at::arange(rows * cols, at::kLong);
  at::Tensor v = (idx * 17 + r * 131 + salt * 7).remainder(23);
  if (dtype != at::kByte) {
    v = v - 11;
  }
  return v.to(dtype).view({rows, cols}).contiguous();
}

at::Tensor reduce_ref(const std::vector<at::Tensor>& xs, ReduceOp op) {
  at::Tensor acc = xs[0].to(at::kDouble);
  for (size_t i = 1; i < xs.size(); ++i) {
    const at::Tensor x = xs[i].to(at::kDouble);
    acc = op == ReduceOp::kSum   ? acc + x
          : op == ReduceOp::kMax ? at::maximum(acc, x)
                                 : at::minimum(acc, x);
  }
  return acc;
}

void expect_equal(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_TRUE(at::equal(got.to(at::kDouble), want.to(at::kDouble)))
      << what << "\n got " << got.view(-1).slice(0, 0, 8) << "\n want "
      << want.view(-1).slice(0, 0, 8);
}

std::string label(at::ScalarType t, const char* op) {
  return std::string(op) + " " + c10::toString(t) + " at " + std::to_string(world().size()) +
         " ranks";
}

TEST(Collectives, WorldIsConsistent) {
  EXPECT_EQ(world().backend(), "mpi");
  EXPECT_GE(world().size(), 1);
  EXPECT_LT(world().rank(), world().size());
  EXPECT_GE(world().local_size(), 1);
  EXPECT_LT(world().local_rank(), world().local_size());
  EXPECT_TRUE(world().device().is_cpu());
}

TEST(Collectives, HostLayoutNamesEveryRankOnce) {
  // One machine: every rank on this host, as one run of ranks.
  const std::vector<std::string> names = all_host_names(world());
  ASSERT_EQ(static_cast<int>(names.size()), world().size());
  for (const std::string& n : names) {
    EXPECT_EQ(n, host_name());
  }
  const std::string ranks = world().size() == 1 ? "0" : "0-" + std::to_string(world().size() - 1);
  EXPECT_EQ(host_layout(world()), std::vector<std::string>{host_name() + ":" + ranks});
}

TEST(Collectives, AllReduceEveryOpAndDtype) {
  const int p = world().size();
  for (auto dtype : kDtypes) {
    for (auto op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
      for (int64_t n : {1, 7, 1000}) {
        std::vector<at::Tensor> all;
        for (int r = 0; r < p; ++r) {
          all.push_back(input_of(r, n, 1, dtype));
        }
        at::Tensor t = all[world().rank()].clone();
        world().all_reduce(t, op);
        expect_equal(t, reduce_ref(all, op), label(dtype, reduce_op_name(op)));
      }
    }
  }
}

TEST(Collectives, AllReduceAverage) {
  const int p = world().size();
  at::Tensor t = at::full({5}, static_cast<double>(world().rank()), at::kFloat);
  all_reduce_average(world(), t);
  EXPECT_TRUE(at::allclose(t, at::full({5}, (p - 1) / 2.0, at::kFloat)));
  at::Tensor i = at::ones({2}, at::kInt);
  EXPECT_THROW(all_reduce_average(world(), i), Error);
}

TEST(Collectives, AllGatherEqualSizes) {
  const int p = world().size();
  for (auto dtype : kDtypes) {
    std::vector<at::Tensor> all;
    for (int r = 0; r < p; ++r) {
      all.push_back(input_of(r, 3, 5, dtype));
    }
    at::Tensor out = at::empty({3 * p, 5}, at::TensorOptions().dtype(dtype));
    world().all_gather(all[world().rank()], out);
    expect_equal(out, at::cat(all, 0), label(dtype, "all_gather"));
    // The allocating helper gives the same.
    expect_equal(all_gather(world(), all[world().rank()]), at::cat(all, 0),
                 label(dtype, "all_gather helper"));
  }
}

TEST(Collectives, AllGatherVUnevenRows) {
  const int p = world().size();
  // Rank 0 contributes no rows, the others differ: 0, 3, 2, 1, ...
  std::vector<int64_t> counts;
  for (int r = 0; r < p; ++r) {
    counts.push_back((r * 3) % 4);
  }
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  for (auto dtype : kDtypes) {
    std::vector<at::Tensor> all;
    for (int r = 0; r < p; ++r) {
      all.push_back(input_of(r, counts[r], 4, dtype));
    }
    at::Tensor out = at::empty({total, 4}, at::TensorOptions().dtype(dtype));
    world().all_gather_v(all[world().rank()], out, counts);
    expect_equal(out, at::cat(all, 0), label(dtype, "all_gather_v"));
    expect_equal(all_gather_v(world(), all[world().rank()]), at::cat(all, 0),
                 label(dtype, "all_gather_v helper"));
  }
  EXPECT_EQ(all_gather_counts(world(), 10 + world().rank()).size(), static_cast<size_t>(p));
}

TEST(Collectives, ReduceScatterEqualBlocks) {
  const int p = world().size();
  const int me = world().rank();
  for (auto dtype : kDtypes) {
    for (auto op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
      std::vector<at::Tensor> all;
      for (int r = 0; r < p; ++r) {
        all.push_back(input_of(r, 2 * p, 3, dtype));
      }
      at::Tensor out = at::empty({2, 3}, at::TensorOptions().dtype(dtype));
      world().reduce_scatter(all[me], out, op);
      expect_equal(out, reduce_ref(all, op).slice(0, 2 * me, 2 * me + 2),
                   label(dtype, "reduce_scatter"));
    }
  }
}

TEST(Collectives, ReduceScatterVUnevenBlocks) {
  const int p = world().size();
  const int me = world().rank();
  std::vector<int64_t> counts;
  for (int r = 0; r < p; ++r) {
    counts.push_back((r + 1) % 3);  // 1, 2, 0, 1, ...
  }
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  const int64_t start = std::accumulate(counts.begin(), counts.begin() + me, int64_t{0});
  for (auto dtype : kDtypes) {
    std::vector<at::Tensor> all;
    for (int r = 0; r < p; ++r) {
      all.push_back(input_of(r, total, 2, dtype));
    }
    at::Tensor out = at::empty({counts[me], 2}, at::TensorOptions().dtype(dtype));
    world().reduce_scatter_v(all[me], out, counts, ReduceOp::kSum);
    expect_equal(out, reduce_ref(all, ReduceOp::kSum).slice(0, start, start + counts[me]),
                 label(dtype, "reduce_scatter_v"));
  }
}

TEST(Collectives, BroadcastFromEveryRoot) {
  const int p = world().size();
  for (auto dtype : kDtypes) {
    for (int root = 0; root < p; ++root) {
      at::Tensor t = input_of(world().rank(), 4, 3, dtype, root);
      world().broadcast(t, root);
      expect_equal(t, input_of(root, 4, 3, dtype, root), label(dtype, "broadcast"));
    }
  }
}

TEST(Collectives, HelpersAgree) {
  EXPECT_TRUE(any_rank(world(), world().rank() == world().size() - 1));
  EXPECT_FALSE(any_rank(world(), false));
  const double n = world().size();
  EXPECT_DOUBLE_EQ(all_reduce_scalar(world(), world().rank(), ReduceOp::kSum), n * (n - 1) / 2);
  EXPECT_DOUBLE_EQ(all_reduce_scalar(world(), world().rank(), ReduceOp::kMax), n - 1);
  world().barrier();
}

// Bad arguments are caught on the calling rank, before any communication, with a message that
// names the operation; every rank passes the same bad arguments so none is left waiting.
TEST(Collectives, BadArgumentsThrowBeforeCommunicating) {
  const int p = world().size();
  at::Tensor in = at::zeros({2, 3});
  at::Tensor wrong = at::zeros({2 * p + 1, 3});
  try {
    world().all_gather(in, wrong);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("all_gather"), std::string::npos) << e.what();
  }
  at::Tensor non_contiguous = at::zeros({4, 4}).t();
  EXPECT_THROW(world().all_reduce(non_contiguous, ReduceOp::kSum), Error);
  at::Tensor flags = at::zeros({3}, at::kBool);
  EXPECT_THROW(world().all_reduce(flags, ReduceOp::kMax), Error);
  std::vector<int64_t> bad_counts(p, 1);
  at::Tensor out = at::zeros({p + 1, 3});
  at::Tensor one = at::zeros({1, 3});
  EXPECT_THROW(world().all_gather_v(one, out, bad_counts), Error);
  at::Tensor scalar = at::zeros({1});
  EXPECT_THROW(world().broadcast(scalar, p), Error);
}

// The single-process communicator is the one-rank case of the same semantics.
TEST(Collectives, SingleProcessMatchesOneRank) {
  auto single = make_single_process_communicator();
  EXPECT_EQ(single->size(), 1);
  at::Tensor x = input_of(0, 3, 2, at::kFloat);
  at::Tensor y = x.clone();
  single->all_reduce(y, ReduceOp::kSum);
  expect_equal(y, x, "single all_reduce");
  at::Tensor g = at::empty({3, 2});
  single->all_gather(x, g);
  expect_equal(g, x, "single all_gather");
  at::Tensor s = at::empty({3, 2});
  single->reduce_scatter_v(x, s, {3}, ReduceOp::kSum);
  expect_equal(s, x, "single reduce_scatter_v");
  EXPECT_THROW(single->broadcast(y, 1), Error);
}

}  // namespace
}  // namespace ffc::comm
