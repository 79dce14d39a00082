// `ffc plan`: memory and head FLOPs per rank of a method at a scale; with --cluster, the
// step-time model on named hardware (plan/cluster_plan.h).

#include <iostream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "common/methods.h"
#include "plan/cluster_plan.h"
#include "plan/plan.h"

namespace ffc::app {

int run_plan(const PlanCommand& cmd) {
  plan::PlanInput in;
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
  if (!cmd.cluster.empty()) {
    const auto presets = plan::cluster_presets(cmd.cluster_file);
    if (cmd.cluster == "list") {
      std::cout << plan::cluster_list_text(presets);
      return 0;
    }
    const plan::ClusterSpec cluster = plan::parse_cluster(cmd.cluster, presets);
    std::vector<std::string> methods = cmd.methods;
    if (methods.empty()) {
      methods = cmd.method_given ? std::vector<std::string>{cmd.method} : method_names();
    }
    plan::StepInput step;
    step.plan = in;
    step.impl = cmd.impl;
    step.images = cmd.images;
    std::vector<plan::StepPlan> plans;
    for (const auto& m : methods) {
      step.plan.method = m;
      plans.push_back(plan::plan_step(step, cluster));
    }
    std::cout << (cmd.json ? plan::step_plans_json(plans, step, cluster) + "\n"
                           : plan::step_plans_text(plans, step, cluster));
    return 0;
  }
  const plan::Plan plan = plan::make_plan(in);
  std::cout << (cmd.json ? plan::plan_json(plan) + "\n" : plan::plan_text(plan));
  return 0;
}

}  // namespace ffc::app
