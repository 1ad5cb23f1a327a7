#pragma once
/// \file config_file.hpp
/// Run configuration: one YAML file parsed into the typed structs of core/config.hpp.
/// Unknown keys, wrong types and inconsistent values are errors naming the key.
#include <string>
#include <vector>

#include "rbsde/core/config.hpp"

namespace rbsde {

/// Parses a YAML file and applies `key.sub=value` overrides (value in YAML syntax, e.g.
/// `target.mean=[1,2]`). Throws Error naming the file or key on any problem.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// The same from YAML text (tests, and load_config after reading the file).
Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides = {},
                    const std::string& source = "<string>");

/// Whether target.name names a posterior (logreg*, lgcp, torchscript): those for which
/// precondition.kind and sample.hmc_steps default to auto.
bool is_posterior_target(const std::string& name);

/// Every configuration key with what it accepts, its default and what it does
/// (`rbsde --help-config`).
std::string options_help();
/// The same as the Markdown table of the README (a test keeps the two equal).
std::string options_markdown();

}  // namespace rbsde
