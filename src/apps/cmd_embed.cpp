// `ffc embed`: the embeddings of an image folder, a RecordIO dataset or a verification set file,
// written to HDF5 (eval/embed_file.h, docs/eval.md). Under mpirun or srun each rank embeds a
// block of the images and writes its rows.

#include <ATen/ATen.h>

#include <chrono>
#include <iostream>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "apps/guarded_main.h"
#include "apps/network_cli.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/version.h"
#include "eval/embed_file.h"
#include "h5/input_norm.h"
#include "model/backbone.h"

namespace ffc::app {

int run_embed(const EmbedCommand& cmd) {
  const auto started = std::chrono::steady_clock::now();
  const Config config = resolve_config(cmd.config);
  if (cmd.config.dump) {
    std::cout << dump_config(config);
    return kExitOk;
  }
  if (cmd.network.backbone.empty() == cmd.network.checkpoint.empty()) {
    throw ConfigError(
        "give the network: --backbone FILE.h5 (ffc model export, ffc ckpt export, "
        "tools/ffc_h5.py --from-pt) or --checkpoint FILE.h5 [--net probe|gallery]");
  }
  Session session = start_session(config, comm::parse_backend(cmd.backend));
  comm::Communicator& comm = *session.comm;
  const bool root = comm.rank() == 0;

  eval::LoadedNetwork loaded = eval::load_network(network_source(cmd.network));
  loaded.net->to(comm.device());
  model::Backbone& net = *loaded.net;
  const model::BackboneSpec& spec = net.spec();
  const eval::EmbedInput input = eval::open_embed_input(
      cmd.input, spec.image_size, data::parse_color_order(config.color_order), loaded.input_norm);
  spdlog::info("embedding {} on {} rank(s), {}", input.description, comm.size(),
               cmd.no_flip ? "without flip" : "with the flip test (image + mirror image)");
  spdlog::info("network {}; input normalisation {} ({})", loaded.description,
               describe(loaded.input_norm), loaded.input_norm_note);

  h5::Attributes attrs = {
      {"network", spec.name},
      {"embedding_size", spec.embedding_size},
      {"image_size", spec.image_size},
  };
  for (auto& a : h5::input_norm_attributes(loaded.input_norm)) {
    attrs.push_back(std::move(a));
  }
  const bool from_checkpoint = !cmd.network.checkpoint.empty();
  attrs.emplace_back("source", input.path);
  attrs.emplace_back("source_kind", input.kind);
  attrs.emplace_back("network_file",
                     from_checkpoint ? cmd.network.checkpoint : cmd.network.backbone);
  attrs.emplace_back("net", from_checkpoint ? cmd.network.net : std::string("backbone"));
  attrs.emplace_back("step", loaded.step);
  attrs.emplace_back("producer", "ffc " + project_version() + " (git " + git_revision() + ")");

  eval::EmbedFileOptions options;
  options.batch = cmd.batch;
  options.flip = !cmd.no_flip;
  options.chunk = cmd.chunk;
  eval::write_embeddings_h5(net, input, comm, cmd.out, attrs, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (root) {
    std::cout << "wrote " << cmd.out << ": " << input.count << " embeddings of dimension "
              << spec.embedding_size << (options.flip ? " (image + mirror)" : " (no flip)")
              << (input.has_labels ? ", labels" : "") << (input.paths.empty() ? "" : ", paths")
              << "; input normalisation " << describe(loaded.input_norm) << "; " << comm.size()
              << " rank(s), " << fmt::format("{:.1f}", seconds) << " s ("
              << fmt::format("{:.0f}", static_cast<double>(input.count) / seconds)
              << " images/s)\n";
  }
  return kExitOk;
}

}  // namespace ffc::app
