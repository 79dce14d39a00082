// `ffc plan`: memory and head FLOPs per rank of a method at a scale.

#include <iostream>

#include "apps/commands.h"
#include "train/plan.h"

namespace ffc::app {

int run_plan(const PlanCommand& cmd) {
  train::PlanInput in;
  in.method = cmd.method;
  in.num_classes = cmd.num_classes;
  in.embedding = cmd.embedding;
  in.batch = cmd.batch;
  in.ranks = cmd.ranks;
  in.sample_rate = cmd.sample_rate;
  in.pool = cmd.pool;
  in.vfc_rows = cmd.vfc_rows;
  in.images = cmd.images;
  in.network = cmd.network;
  in.image_size = cmd.image_size;
  in.memory_bytes = cmd.memory_gib * 1024.0 * 1024.0 * 1024.0;
  const train::Plan plan = train::make_plan(in);
  std::cout << (cmd.json ? train::plan_json(plan) + "\n" : train::plan_text(plan));
  return 0;
}

}  // namespace ffc::app
