#pragma once
// Reading one field of a JSON object with a fallback when it is missing or of another type.
// (nlohmann's value() with a default trips GCC's -Wnull-dereference at -O3.)

#include <nlohmann/json.hpp>

#include <string>

namespace ffc {

inline double json_number(const nlohmann::ordered_json& j, const std::string& key,
                          double fallback) {
  const auto it = j.find(key);  // end() for null and other non-objects
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

inline std::string json_string(const nlohmann::ordered_json& j, const std::string& key,
                               const std::string& fallback = "") {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

}  // namespace ffc
