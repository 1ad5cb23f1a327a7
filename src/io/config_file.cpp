/// \file config_file.cpp
/// YAML text → Config. Every key is checked against the accepted set and every value against
/// its type and range before any work starts, so a typo fails loudly instead of falling back
/// to a default.
#include "rbsde/io/config_file.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "rbsde/bsde/smc.hpp"
#include "rbsde/error.hpp"

namespace rbsde {
namespace {

struct Section {
  std::string name;
  std::vector<std::string> keys;
};

/// The accepted sections and keys, in the order of the structs in config.hpp (and of
/// resolved_yaml): those of the option table (options() below).
const std::vector<Section>& sections();

const std::vector<std::string> kTargetNames = {
    "gaussian",          "gmm",          "funnel", "many_well",  "gmm40", "logreg",
    "logreg_ionosphere", "logreg_sonar", "lgcp",   "torchscript"};
// The targets whose dimension follows from their data (target.dim optional).
const std::vector<std::string> kDataTargets = {"gmm40", "logreg", "logreg_ionosphere",
                                               "logreg_sonar", "lgcp"};
// The project's copy of each named benchmark's data file (data/README.md), the default of
// target.data; logreg has none.
const std::vector<std::pair<std::string, std::string>> kDefaultData = {
    {"gmm40", "gmm40_means.csv"},
    {"logreg_ionosphere", "ionosphere.csv"},
    {"logreg_sonar", "sonar.csv"},
    {"lgcp", "pines.csv"},
};
// The posteriors: precondition.kind defaults to auto for them.
const std::vector<std::string> kPosteriorTargets = {"logreg", "logreg_ionosphere", "logreg_sonar",
                                                    "lgcp", "torchscript"};
// The mixtures, whose Laplace map would hold one of their modes: no automatic preconditioning.
const std::vector<std::string> kMixtureTargets = {"gmm", "many_well", "gmm40"};
// Above this d every other target is preconditioned automatically too: a small mismatch of each
// coordinate with the reference N(0, I) adds up over d (N(0.3, 0.8 I) is 0.07 nats from it per
// coordinate, 697 nats in d = 10⁴, where the unpreconditioned sampler is hundreds of nats off).
constexpr int64_t kAutoPreconditionMinDim = 1001;
const std::vector<std::string> kSchedules = {"constant", "linear"};
const std::vector<std::string> kIntegrators = {"euler", "exponential"};
const std::vector<std::string> kActivations = {"silu", "tanh", "relu", "gelu"};
const std::vector<std::string> kLrSchedules = {"cosine", "constant"};
const std::vector<std::string> kAnnealPaths = {"bridge", "tempered"};
const std::vector<std::string> kYSteps = {"exact", "euler"};
const std::vector<std::string> kReferenceMethods = {"mala", "smc"};
const std::vector<std::string> kSampleMethods = {"sde", "ode"};
const std::vector<std::string> kDivergences = {"exact", "hutchinson", "auto"};
constexpr int64_t kMaxProbes = int64_t{1} << 28;
// HMC iteration t keys the noise's 32-bit step t, below noise.hpp's kInitialStep = 2^32 - 1.
constexpr int64_t kMaxHmcSteps = (int64_t{1} << 32) - 1;
const std::vector<std::string> kPreconditionKinds = {"none",  "config",      "prior", "laplace",
                                                     "pilot", "variational", "auto"};
const std::vector<std::string> kPreconditionForms = {"auto", "cholesky", "diagonal", "curvature"};

// The target.* keys that only some targets read, each with those targets' names.
const std::vector<std::pair<std::string, std::vector<std::string>>> kTargetSpecificKeys = {
    {"mean", {"gaussian"}},
    {"covariance", {"gaussian"}},
    {"weights", {"gmm"}},
    {"means", {"gmm"}},
    {"covariances", {"gmm"}},
    {"data", kDataTargets},
    {"label", {"logreg", "logreg_ionosphere", "logreg_sonar"}},
    {"grid", {"lgcp"}},
    {"whitened", {"lgcp"}},
    {"module", {"torchscript"}},
    {"method", {"torchscript"}},
};

// The precondition.* keys that only some kinds read, each with those kinds.
const std::vector<std::pair<std::string, std::vector<std::string>>> kPreconditionKeys = {
    {"centre", {"config"}},
    {"scale", {"config"}},
    {"form", {"laplace", "pilot", "variational", "auto"}},
    {"iterations", {"laplace", "auto"}},
    {"variational_iterations", {"variational", "auto"}},
    {"pilot", {"pilot"}},
};

// Mixture weights whose sum is this close to 1 are kept as given: renormalising them would
// move the last bits, and parsing resolved_yaml must reproduce the weights exactly.
constexpr double kWeightSumTolerance = 1e-12;
// Relative tolerance of the symmetry check of a covariance matrix (as written in a file).
constexpr double kSymmetryTolerance = 1e-10;
// The most paths systematic resampling accepts.
constexpr int64_t kMaxResampleCount = (int64_t{1} << 31) - 1;
// Network sizes beyond any useful model: larger values are typing mistakes, and a depth of
// 10^11 would build layers until the memory runs out before any allocation failed.
constexpr int64_t kMaxWidth = 65536;
constexpr int64_t kMaxSteps = int64_t{1} << 24;
constexpr int64_t kMaxDepth = 1000;
constexpr int64_t kMaxTimeFeatures = 1000;

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

std::string section_names() {
  std::vector<std::string> names;
  for (const Section& section : sections()) names.push_back(section.name);
  return join(names);
}

const Section* find_section(const std::string& name) {
  for (const Section& section : sections()) {
    if (section.name == name) return &section;
  }
  return nullptr;
}

bool contains(const std::vector<std::string>& items, const std::string& item) {
  for (const std::string& candidate : items) {
    if (candidate == item) return true;
  }
  return false;
}

/// The accepted section of that name; `origin` (the file or override) names the culprit otherwise.
const Section& known_section(const std::string& origin, const std::string& section) {
  const Section* accepted = find_section(section);
  if (accepted == nullptr) {
    throw Error(origin + ": unknown section '" + section + "' (accepted: " + section_names() + ")");
  }
  return *accepted;
}

void check_known_key(const std::string& origin, const std::string& section,
                     const std::string& key) {
  const Section& accepted = known_section(origin, section);
  if (!contains(accepted.keys, key)) {
    throw Error(origin + ": unknown key '" + section + "." + key +
                "' (accepted: " + join(accepted.keys) + ")");
  }
}

/// Shortest text that reads back as exactly the same double (resolved_yaml must round-trip).
std::string format_number(double value) {
  char buffer[32];
  const std::to_chars_result result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string indexed(const std::string& key, std::size_t index) {
  return key + "[" + std::to_string(index) + "]";
}

/// How a value looked in the file, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      // yaml-cpp tags quoted scalars "!": '5' is a string, not a number.
      return (node.Tag() == "!" ? "the quoted string '" : "'") + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "an empty value";
  }
}

/// The text of an unquoted scalar: the only form a number or a boolean may take.
std::optional<std::string> plain_scalar(const YAML::Node& node) {
  if (!node.IsScalar() || node.Tag() == "!") return std::nullopt;
  return node.Scalar();
}

/// Parses all of `text` as a T; a trailing remainder ("1.5" read as an integer) is an error.
template <typename T>
std::errc parse_whole(const std::string& text, T& value) {
  const char* last = text.data() + text.size();
  const std::from_chars_result result = std::from_chars(text.data(), last, value);
  if (result.ec != std::errc()) return result.ec;
  return result.ptr == last ? std::errc() : std::errc::invalid_argument;
}

/// The text of a mapping key; a list or map used as a key ("? [a]") is an error.
std::string key_name(const YAML::Node& key, const std::string& source) {
  if (!key.IsScalar()) throw Error(source + ": a key must be a plain name, got " + describe(key));
  return key.Scalar();
}

/// Throws unless the top level is a map of known sections, each a map of known keys, none
/// given twice (yaml-cpp would silently read the first of two equal keys).
void check_structure(const YAML::Node& root, const std::string& source) {
  if (root.IsNull()) return;
  if (!root.IsMap()) {
    throw Error(source + ": the top level must be a map of sections (accepted: " + section_names() +
                "), got " + describe(root));
  }
  std::set<std::string> seen;
  for (const auto& section : root) {
    const std::string name = key_name(section.first, source);
    const Section& accepted = known_section(source, name);
    if (!seen.insert(name).second) throw Error(source + ": section '" + name + "' given twice");
    if (section.second.IsNull()) continue;
    if (!section.second.IsMap()) {
      throw Error(source + ": section '" + name + "' must be a map of keys (accepted: " +
                  join(accepted.keys) + "), got " + describe(section.second));
    }
    for (const auto& entry : section.second) {
      const std::string key = key_name(entry.first, source);
      check_known_key(source, name, key);
      if (!seen.insert(name + "." + key).second) {
        throw Error(source + ": key '" + name + "." + key + "' given twice");
      }
    }
  }
}

YAML::Node parse_override_value(const std::string& origin, const std::string& text) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw Error(origin + ": cannot parse the value as YAML: " + e.msg);
  }
}

/// Applies "section.key=value" overrides (value in YAML syntax) to the tree. Returns, for each
/// key set, the override that set it last, so that a bad value is reported against it.
std::map<std::string, std::string> apply_overrides(YAML::Node& root,
                                                   const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> origins;
  for (const std::string& text : overrides) {
    const std::string origin = "override '" + text + "'";
    const std::size_t equals = text.find('=');
    if (equals == std::string::npos) {
      throw Error(origin + ": expected section.key=value, e.g. train.lr=1e-3");
    }
    const std::string key = text.substr(0, equals);
    const std::size_t dot = key.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == key.size() ||
        key.find('.', dot + 1) != std::string::npos) {
      throw Error(origin + ": the key must have two levels, section.key, got '" + key + "'");
    }
    const std::string section = key.substr(0, dot);
    const std::string name = key.substr(dot + 1);
    check_known_key(origin, section, name);
    root[section][name] = parse_override_value(origin, text.substr(equals + 1));
    origins[key] = origin;
  }
  return origins;
}

/// Typed access to the checked tree. Errors name the key and where its value came from.
class Reader {
 public:
  Reader(YAML::Node root, std::string source, std::map<std::string, std::string> overridden)
      : root_(std::move(root)), source_(std::move(source)), overridden_(std::move(overridden)) {}

  /// The node at a "section.key" path; undefined (false) when the key is absent.
  YAML::Node find(const std::string& key) const {
    const std::size_t dot = key.find('.');
    // root_ is const here, so the lookup does not insert the key it looks for.
    const YAML::Node section = root_[key.substr(0, dot)];
    // A lookup inside an absent section would throw InvalidNode.
    return section ? section[key.substr(dot + 1)] : section;
  }

  /// The file, or the override that set `key` (which may carry an index: target.mean[2]).
  const std::string& origin(const std::string& key) const {
    const auto it = overridden_.find(key.substr(0, key.find('[')));
    return it == overridden_.end() ? source_ : it->second;
  }

  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    throw Error(origin(key) + ": " + key + ": " + message);
  }

  [[noreturn]] void fail_missing(const std::string& key, const std::string& hint) const {
    throw Error(origin(key) + ": missing required key '" + key + "' (" + hint + ")");
  }

  int64_t to_int(const YAML::Node& node, const std::string& key) const {
    const std::optional<std::string> text = plain_scalar(node);
    int64_t value = 0;
    const std::errc error = text ? parse_whole(*text, value) : std::errc::invalid_argument;
    if (error == std::errc::result_out_of_range) {
      fail(key, "integer out of the 64-bit range, got '" + *text + "'");
    }
    if (error != std::errc()) fail(key, "expected an integer, got " + describe(node));
    return value;
  }

  uint64_t to_seed(const YAML::Node& node, const std::string& key) const {
    const std::optional<std::string> text = plain_scalar(node);
    uint64_t value = 0;
    const std::errc error = text ? parse_whole(*text, value) : std::errc::invalid_argument;
    int64_t signed_value = 0;
    if (error == std::errc::result_out_of_range ||
        (error != std::errc() && text && parse_whole(*text, signed_value) == std::errc())) {
      fail(key, "must be a non-negative integer below 2^64, got " + *text);
    }
    if (error != std::errc()) fail(key, "expected a non-negative integer, got " + describe(node));
    return value;
  }

  double to_double(const YAML::Node& node, const std::string& key) const {
    const std::optional<std::string> text = plain_scalar(node);
    double value = 0.0;
    const std::errc error = text ? parse_whole(*text, value) : std::errc::invalid_argument;
    if (error != std::errc()) fail(key, "expected a number, got " + describe(node));
    if (!std::isfinite(value)) fail(key, "expected a finite number, got " + describe(node));
    return value;
  }

  bool to_bool(const YAML::Node& node, const std::string& key) const {
    const std::optional<std::string> text = plain_scalar(node);
    if (text && (*text == "true" || *text == "True" || *text == "TRUE")) return true;
    if (text && (*text == "false" || *text == "False" || *text == "FALSE")) return false;
    fail(key, "expected a boolean (true or false), got " + describe(node));
  }

  std::string to_string(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(key, "expected a string, got " + describe(node));
    return node.Scalar();
  }

  // Optional keys: the field keeps its default when the key is absent.
  void read(const std::string& key, int64_t& field) const {
    if (const YAML::Node node = find(key)) field = to_int(node, key);
  }
  void read(const std::string& key, uint64_t& field) const {
    if (const YAML::Node node = find(key)) field = to_seed(node, key);
  }
  void read(const std::string& key, double& field) const {
    if (const YAML::Node node = find(key)) field = to_double(node, key);
  }
  void read(const std::string& key, bool& field) const {
    if (const YAML::Node node = find(key)) field = to_bool(node, key);
  }
  void read(const std::string& key, std::string& field) const {
    if (const YAML::Node node = find(key)) field = to_string(node, key);
  }

  void require(bool ok, const std::string& key, const std::string& range, double value) const {
    if (!ok) fail(key, "must be " + range + ", got " + format_number(value));
  }
  void require(bool ok, const std::string& key, const std::string& range, int64_t value) const {
    if (!ok) fail(key, "must be " + range + ", got " + std::to_string(value));
  }
  void require_one_of(const std::string& key, const std::string& value,
                      const std::vector<std::string>& accepted) const {
    if (!contains(accepted, value)) {
      fail(key, "must be one of " + join(accepted) + "; got '" + value + "'");
    }
  }

 private:
  YAML::Node root_;
  std::string source_;
  std::map<std::string, std::string> overridden_;
};

/// A list of `dim` numbers, or (with allow_scalar) one number broadcast to all of them.
Eigen::VectorXd read_vector(const Reader& in, const YAML::Node& node, const std::string& key,
                            int64_t dim, bool allow_scalar) {
  if (allow_scalar && node.IsScalar()) {
    return Eigen::VectorXd::Constant(dim, in.to_double(node, key));
  }
  if (!node.IsSequence()) {
    in.fail(key, std::string("expected ") + (allow_scalar ? "a number or " : "") + "a list of " +
                     std::to_string(dim) + " numbers (target.dim), got " + describe(node));
  }
  if (static_cast<int64_t>(node.size()) != dim) {
    in.fail(key, "expected " + std::to_string(dim) + " values (target.dim), got " +
                     std::to_string(node.size()));
  }
  Eigen::VectorXd vector(dim);
  for (std::size_t i = 0; i < node.size(); ++i) vector(i) = in.to_double(node[i], indexed(key, i));
  return vector;
}

/// Whether a node is a list of rows (a matrix) rather than a scalar or a list of numbers.
bool is_matrix(const YAML::Node& node) {
  return node.IsSequence() && node.size() > 0 && node[0].IsSequence();
}

/// A covariance as a scalar c (c I), a list of dim numbers (diagonal) or a dim x dim list of
/// rows; symmetric and positive definite.
Eigen::MatrixXd read_covariance(const Reader& in, const YAML::Node& node, const std::string& key,
                                int64_t dim) {
  Eigen::MatrixXd covariance;
  if (is_matrix(node)) {
    if (static_cast<int64_t>(node.size()) != dim) {
      in.fail(key, "expected " + std::to_string(dim) + " rows (target.dim), got " +
                       std::to_string(node.size()));
    }
    covariance.resize(dim, dim);
    for (std::size_t i = 0; i < node.size(); ++i) {
      covariance.row(i) =
          read_vector(in, node[i], indexed(key, i), dim, /*allow_scalar=*/false).transpose();
    }
    const double tolerance = kSymmetryTolerance * covariance.cwiseAbs().maxCoeff();
    for (int64_t i = 0; i < dim; ++i) {
      for (int64_t j = i + 1; j < dim; ++j) {
        if (std::abs(covariance(i, j) - covariance(j, i)) > tolerance) {
          in.fail(key, "not symmetric: [" + std::to_string(i) + "][" + std::to_string(j) +
                           "] = " + format_number(covariance(i, j)) + " but [" + std::to_string(j) +
                           "][" + std::to_string(i) + "] = " + format_number(covariance(j, i)));
        }
      }
    }
    // Exactly symmetric from here on, so that every consumer sees the same matrix whichever
    // triangle it reads.
    covariance = (0.5 * (covariance + covariance.transpose())).eval();
  } else {
    covariance = read_vector(in, node, key, dim, /*allow_scalar=*/true).asDiagonal();
  }
  if (covariance.llt().info() != Eigen::Success) in.fail(key, "not positive definite");
  return covariance;
}

void read_gaussian(const Reader& in, TargetConfig& target) {
  const YAML::Node mean = in.find("target.mean");
  target.mean = mean ? read_vector(in, mean, "target.mean", target.dim, /*allow_scalar=*/true)
                     : Eigen::VectorXd::Zero(target.dim);
  const YAML::Node covariance = in.find("target.covariance");
  if (covariance && is_matrix(covariance)) {
    target.covariance = read_covariance(in, covariance, "target.covariance", target.dim);
  } else {
    target.covariance_diagonal = covariance ? read_vector(in, covariance, "target.covariance",
                                                          target.dim, /*allow_scalar=*/true)
                                            : Eigen::VectorXd::Ones(target.dim);
    if (!(target.covariance_diagonal.array() > 0.0).all()) {
      in.fail("target.covariance", "not positive definite (variances must be > 0)");
    }
  }
}

void read_gmm(const Reader& in, TargetConfig& target) {
  const YAML::Node means = in.find("target.means");
  if (!means) {
    in.fail_missing("target.means",
                    "target.name: gmm needs a list of component means, each a "
                    "list of target.dim numbers");
  }
  if (!means.IsSequence() || means.size() == 0) {
    in.fail("target.means", "expected a non-empty list of component means, got " + describe(means));
  }
  const std::size_t components = means.size();
  for (std::size_t k = 0; k < components; ++k) {
    target.means.push_back(
        read_vector(in, means[k], indexed("target.means", k), target.dim, /*allow_scalar=*/false));
  }

  const YAML::Node weights = in.find("target.weights");
  if (weights && (!weights.IsSequence() || weights.size() != components)) {
    in.fail("target.weights",
            "expected " + std::to_string(components) +
                " values (one per entry of target.means), got " +
                (weights.IsSequence() ? std::to_string(weights.size()) : describe(weights)));
  }
  target.weights.assign(components, 1.0 / static_cast<double>(components));
  if (weights) {
    double sum = 0.0;
    for (std::size_t k = 0; k < components; ++k) {
      const std::string key = indexed("target.weights", k);
      target.weights[k] = in.to_double(weights[k], key);
      in.require(target.weights[k] > 0.0, key, "> 0", target.weights[k]);
      sum += target.weights[k];
    }
    if (std::abs(sum - 1.0) > kWeightSumTolerance) {
      for (double& weight : target.weights) weight /= sum;
    }
  }

  // Either one entry per component, or a single entry (a bare scalar or a one-element list)
  // shared by all of them.
  const YAML::Node covariances = in.find("target.covariances");
  if (!covariances) {
    target.covariances.assign(components, Eigen::MatrixXd::Identity(target.dim, target.dim));
  } else if (covariances.IsSequence() && covariances.size() == components) {
    for (std::size_t k = 0; k < components; ++k) {
      target.covariances.push_back(
          read_covariance(in, covariances[k], indexed("target.covariances", k), target.dim));
    }
  } else if (covariances.IsSequence() && covariances.size() == 1) {
    target.covariances.assign(
        components, read_covariance(in, covariances[0], "target.covariances[0]", target.dim));
  } else if (covariances.IsSequence()) {
    in.fail("target.covariances", "expected " + std::to_string(components) +
                                      " entries (one per entry of target.means) or 1 shared "
                                      "by all, got " +
                                      std::to_string(covariances.size()));
  } else {
    target.covariances.assign(components,
                              read_covariance(in, covariances, "target.covariances", target.dim));
  }
}

/// target.data (default: the project's copy for a named benchmark), target.label, target.grid
/// and target.whitened of the data targets; lgcp's dimension follows from target.grid.
void read_data_target(const Reader& in, TargetConfig& target) {
  if (const YAML::Node data = in.find("target.data")) {
    target.data = in.to_string(data, "target.data");
    if (target.data.empty()) in.fail("target.data", "must be a non-empty file path");
  } else {
    for (const auto& [name, file] : kDefaultData) {
      if (name == target.name) target.data = std::string(RBSDE_DATA_DIR) + "/" + file;
    }
    if (target.data.empty()) {
      in.fail_missing("target.data", "target.name: " + target.name + " needs a CSV file");
    }
  }
  in.read("target.label", target.label);
  if (target.label.empty()) in.fail("target.label", "must be a non-empty column name");
  in.read("target.grid", target.grid);
  // d = G² must fit in 31 bits (and G² not overflow).
  in.require(target.grid >= 1 && target.grid <= 46340, "target.grid", "in [1, 46340]", target.grid);
  in.read("target.whitened", target.whitened);
  if (target.name == "lgcp") {
    const int64_t cells = target.grid * target.grid;
    if (target.dim != 0 && target.dim != cells) {
      in.fail("target.dim", "lgcp on a " + std::to_string(target.grid) + " x " +
                                std::to_string(target.grid) + " grid (target.grid) has " +
                                std::to_string(cells) + " dimensions, got " +
                                std::to_string(target.dim));
    }
    target.dim = cells;
  }
}

void read_torchscript(const Reader& in, TargetConfig& target) {
  if (!in.find("target.module")) {
    in.fail_missing("target.module", "target.name: torchscript needs a TorchScript file");
  }
  in.read("target.module", target.module);
  if (target.module.empty()) in.fail("target.module", "must be a non-empty file path");
  in.read("target.method", target.method);
}

/// target.names: distinct, non-empty parameter names (their number is checked against the
/// target once it is built: a module's constrain(x) may have other than d outputs).
std::vector<std::string> read_names(const Reader& in) {
  const YAML::Node node = in.find("target.names");
  std::vector<std::string> names;
  if (!node) return names;
  if (!node.IsSequence() || node.size() == 0) {
    in.fail("target.names", "expected a non-empty list of parameter names, got " + describe(node));
  }
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string key = indexed("target.names", i);
    std::string name = in.to_string(node[i], key);
    if (name.empty() || name.find('/') != std::string::npos || name == "chain" || name == "draw") {
      in.fail(key, "a parameter name must be non-empty, without '/', and not chain or draw; got '" +
                       name + "'");
    }
    if (contains(names, name)) in.fail(key, "'" + name + "' appears twice");
    names.push_back(std::move(name));
  }
  return names;
}

TargetConfig read_target(const Reader& in) {
  TargetConfig target;
  if (!in.find("target.name")) in.fail_missing("target.name", "one of " + join(kTargetNames));
  in.read("target.name", target.name);
  in.require_one_of("target.name", target.name, kTargetNames);
  const bool data_target = contains(kDataTargets, target.name);
  // A TorchScript module may state its dimension (an integer attribute dim): checked when it
  // is loaded.
  if (!data_target && target.name != "torchscript" && !in.find("target.dim")) {
    in.fail_missing("target.dim", "an integer >= 1");
  }
  if (in.find("target.dim")) {
    in.read("target.dim", target.dim);
    in.require(target.dim >= 1, "target.dim", ">= 1", target.dim);
  }

  // Parameters of another target are rejected rather than ignored: they signal a mistake.
  for (const auto& [key, names] : kTargetSpecificKeys) {
    if (in.find("target." + key) && !contains(names, target.name)) {
      throw Error(in.origin("target." + key) + ": target." + key +
                  " is used only by target.name: " + join(names) +
                  " (here target.name: " + target.name + ")");
    }
  }

  if (target.name == "funnel") {
    in.require(target.dim >= 2, "target.dim", ">= 2 for funnel", target.dim);
  } else if (target.name == "many_well") {
    in.require(target.dim >= 2 && target.dim % 2 == 0, "target.dim", "even and >= 2 for many_well",
               target.dim);
  } else if (target.name == "gaussian") {
    read_gaussian(in, target);
  } else if (target.name == "gmm") {
    read_gmm(in, target);
  } else if (data_target) {
    read_data_target(in, target);
  } else {
    read_torchscript(in, target);
  }
  target.names = read_names(in);
  return target;
}

PreconditionConfig read_precondition(const Reader& in, const std::string& target_name,
                                     int64_t dim) {
  PreconditionConfig precondition;
  // A posterior (a built-in one or a user's module) has no built-in map to the reference and
  // is preconditioned automatically; the synthetic targets are posed on the reference's scale,
  // which suffices in low dimension only.
  const bool high_dimension =
      dim >= kAutoPreconditionMinDim && !contains(kMixtureTargets, target_name);
  precondition.kind = contains(kPosteriorTargets, target_name) || high_dimension ? "auto" : "none";
  in.read("precondition.kind", precondition.kind);
  in.require_one_of("precondition.kind", precondition.kind, kPreconditionKinds);
  // Settings of another kind are rejected rather than ignored: they signal a mistake.
  for (const auto& [key, kinds] : kPreconditionKeys) {
    if (in.find("precondition." + key) && !contains(kinds, precondition.kind)) {
      throw Error(in.origin("precondition." + key) + ": precondition." + key +
                  " is used only by precondition.kind: " + join(kinds) +
                  " (here precondition.kind: " + precondition.kind + ")");
    }
  }
  if (precondition.kind == "config") {
    if (dim == 0) {
      in.fail("precondition.kind",
              "config needs target.dim in the configuration (the sizes of "
              "precondition.centre and precondition.scale follow from it)");
    }
    const YAML::Node centre = in.find("precondition.centre");
    precondition.centre =
        centre ? read_vector(in, centre, "precondition.centre", dim, /*allow_scalar=*/true)
               : Eigen::VectorXd::Zero(dim);
    // A list of rows is a covariance (L its Cholesky factor); a number or a list of numbers
    // is the diagonal of L itself.
    const YAML::Node scale = in.find("precondition.scale");
    if (scale && scale.IsSequence() && scale.size() > 0 && scale[0].IsSequence()) {
      precondition.scale_covariance = read_covariance(in, scale, "precondition.scale", dim);
    } else {
      precondition.scale_diagonal =
          scale ? read_vector(in, scale, "precondition.scale", dim, /*allow_scalar=*/true)
                : Eigen::VectorXd::Ones(dim);
      const bool one_number = scale && scale.IsScalar();
      for (int64_t i = 0; i < dim; ++i) {
        in.require(precondition.scale_diagonal(i) > 0.0,
                   one_number ? "precondition.scale" : indexed("precondition.scale", i), "> 0",
                   precondition.scale_diagonal(i));
      }
    }
  }
  if (precondition.kind == "laplace" || precondition.kind == "pilot" ||
      precondition.kind == "variational" || precondition.kind == "auto") {
    in.read("precondition.form", precondition.form);
    in.require_one_of("precondition.form", precondition.form, kPreconditionForms);
    if ((precondition.kind == "pilot" || precondition.kind == "variational") &&
        precondition.form == "curvature") {
      in.fail("precondition.form",
              "curvature (the Hessian's diagonal) needs precondition.kind: laplace or auto; a "
              "pilot's map is cholesky or diagonal");
    }
  }
  if (precondition.kind == "laplace" || precondition.kind == "auto") {
    in.read("precondition.iterations", precondition.iterations);
    in.require(precondition.iterations >= 1, "precondition.iterations", ">= 1",
               precondition.iterations);
  }
  if (precondition.kind == "variational" || precondition.kind == "auto") {
    in.read("precondition.variational_iterations", precondition.variational_iterations);
    in.require(precondition.variational_iterations >= 1, "precondition.variational_iterations",
               ">= 1", precondition.variational_iterations);
  }
  if (precondition.kind == "pilot") {
    if (!in.find("precondition.pilot")) {
      in.fail_missing("precondition.pilot", "the HDF5 output file of an earlier rbsde run");
    }
    in.read("precondition.pilot", precondition.pilot);
    if (precondition.pilot.empty()) in.fail("precondition.pilot", "must be a non-empty file path");
  }
  return precondition;
}

template <typename T>
void emit_entry(YAML::Emitter& out, const char* key, const T& value) {
  out << YAML::Key << key << YAML::Value << value;
}

void emit_entry(YAML::Emitter& out, const char* key, double value) {
  out << YAML::Key << key << YAML::Value << format_number(value);
}

void emit_vector(YAML::Emitter& out, const Eigen::VectorXd& vector) {
  out << YAML::Flow << YAML::BeginSeq;
  for (Eigen::Index i = 0; i < vector.size(); ++i) out << format_number(vector(i));
  out << YAML::EndSeq;
}

// One flow row per line keeps a d x d matrix readable in the stored configuration.
void emit_matrix(YAML::Emitter& out, const Eigen::MatrixXd& matrix) {
  out << YAML::BeginSeq;
  for (Eigen::Index i = 0; i < matrix.rows(); ++i) emit_vector(out, matrix.row(i).transpose());
  out << YAML::EndSeq;
}

void emit_target(YAML::Emitter& out, const TargetConfig& target) {
  out << YAML::Key << "target" << YAML::Value << YAML::BeginMap;
  emit_entry(out, "name", target.name);
  // 0: a data target whose file has not been read yet (app.cpp fills it in afterwards).
  if (target.dim > 0) emit_entry(out, "dim", target.dim);
  if (target.name == "gaussian") {
    out << YAML::Key << "mean" << YAML::Value;
    emit_vector(out, target.mean);
    out << YAML::Key << "covariance" << YAML::Value;
    if (target.covariance.size() > 0) {
      emit_matrix(out, target.covariance);
    } else {
      emit_vector(out, target.covariance_diagonal);
    }
  } else if (target.name == "gmm") {
    out << YAML::Key << "weights" << YAML::Value;
    emit_vector(out, Eigen::Map<const Eigen::VectorXd>(
                         target.weights.data(), static_cast<Eigen::Index>(target.weights.size())));
    out << YAML::Key << "means" << YAML::Value << YAML::BeginSeq;
    for (const Eigen::VectorXd& mean : target.means) emit_vector(out, mean);
    out << YAML::EndSeq;
    out << YAML::Key << "covariances" << YAML::Value << YAML::BeginSeq;
    for (const Eigen::MatrixXd& covariance : target.covariances) emit_matrix(out, covariance);
    out << YAML::EndSeq;
  } else if (target.name == "torchscript") {
    emit_entry(out, "module", target.module);
    emit_entry(out, "method", target.method);
  } else if (target.name != "funnel" && target.name != "many_well") {
    emit_entry(out, "data", target.data);
    if (target.name == "lgcp") {
      emit_entry(out, "grid", target.grid);
      emit_entry(out, "whitened", target.whitened);
    } else if (target.name != "gmm40") {
      emit_entry(out, "label", target.label);
    }
  }
  if (!target.names.empty()) {
    out << YAML::Key << "names" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const std::string& name : target.names) out << YAML::DoubleQuoted << name;
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
}

void emit_precondition(YAML::Emitter& out, const PreconditionConfig& precondition) {
  out << YAML::Key << "precondition" << YAML::Value << YAML::BeginMap;
  emit_entry(out, "kind", precondition.kind);
  if (precondition.kind == "config") {
    out << YAML::Key << "centre" << YAML::Value;
    emit_vector(out, precondition.centre);
    out << YAML::Key << "scale" << YAML::Value;
    if (precondition.scale_covariance.size() > 0) {
      emit_matrix(out, precondition.scale_covariance);
    } else {
      emit_vector(out, precondition.scale_diagonal);
    }
  }
  if (precondition.kind == "laplace" || precondition.kind == "pilot" ||
      precondition.kind == "variational" || precondition.kind == "auto") {
    emit_entry(out, "form", precondition.form);
  }
  if (precondition.kind == "laplace" || precondition.kind == "auto") {
    emit_entry(out, "iterations", precondition.iterations);
  }
  if (precondition.kind == "variational" || precondition.kind == "auto") {
    emit_entry(out, "variational_iterations", precondition.variational_iterations);
  }
  if (precondition.kind == "pilot") emit_entry(out, "pilot", precondition.pilot);
  out << YAML::EndMap;
}

/// One configuration key, declared once: what it accepts, what it does, and (for the keys
/// of one plain value) the member it sets, its check and, through the member's initialiser
/// in config.hpp, its default. The reader, the resolved-YAML writer, `rbsde --help-config`
/// and the README's key table all come from options(). The target.* and precondition.* keys
/// whose reading depends on target.name or precondition.kind (lists, matrices, data files)
/// are read and written by read_target / read_precondition and emit_target /
/// emit_precondition; their entries carry the text.
struct Option {
  std::string key;
  std::string accepted;  ///< what values it takes, for --help-config
  std::string help;
  std::string fixed_default;  ///< the default where the member has none to emit
  std::vector<std::string> choices;
  const std::string& (*chosen)(const Config& config) = nullptr;  ///< a choice's value
  void (*read)(const Reader& in, const std::string& key, Config& config) = nullptr;
  void (*emit)(YAML::Emitter& out, const char* name, const Config& config) = nullptr;
  /// Checks the value once every plain key is read (so that it may compare with others).
  void (*check)(const Reader& in, const Config& config) = nullptr;
};

using Check = void (*)(const Reader& in, const Config& config);

/// A key of one plain value: config.*S.*F.
template <auto S, auto F>
Option plain(const char* key, const char* accepted, const char* help, Check check = nullptr) {
  Option option;
  option.key = key;
  option.accepted = accepted;
  option.help = help;
  option.read = [](const Reader& in, const std::string& name, Config& config) {
    in.read(name, config.*S.*F);
  };
  option.emit = [](YAML::Emitter& out, const char* name, const Config& config) {
    emit_entry(out, name, config.*S.*F);
  };
  option.check = check;
  return option;
}

/// A key whose value is one of `choices`.
template <auto S, auto F>
Option choice(const char* key, std::vector<std::string> choices, const char* help) {
  Option option = plain<S, F>(key, "", help);
  option.choices = std::move(choices);
  option.chosen = [](const Config& config) -> const std::string& { return config.*S.*F; };
  return option;
}

/// A key read and written by the structured readers of its section.
Option structured(const char* key, std::string accepted, const char* fixed_default,
                  const char* help) {
  Option option;
  option.key = key;
  option.accepted = std::move(accepted);
  option.fixed_default = fixed_default;
  option.help = help;
  return option;
}

/// sample.hmc_steps: auto (kHmcStepsAuto) or a number of iterations.
Option hmc_steps_option() {
  Option option;
  option.key = "sample.hmc_steps";
  option.accepted = "auto or in [0, 2^32 - 2]";
  option.help = "HMC iterations refining the samples on the exact target (needs resample); auto: " +
                std::to_string(kAutoHmcSteps) +
                " for the posteriors (logreg*, lgcp, torchscript) when the importance weights are "
                "unreliable (Pareto k^ above its threshold), else none";
  option.read = [](const Reader& in, const std::string& key, Config& config) {
    const YAML::Node node = in.find(key);
    if (!node || (node.IsScalar() && node.Scalar() == "auto")) return;  // the default: auto
    const int64_t steps = in.to_int(node, key);
    in.require(steps >= 0 && steps < kMaxHmcSteps, key, "auto or in [0, 2^32 - 2]", steps);
    config.sample.hmc_steps = steps;
  };
  option.emit = [](YAML::Emitter& out, const char* name, const Config& config) {
    if (config.sample.hmc_steps == kHmcStepsAuto) {
      emit_entry(out, name, std::string("auto"));
    } else {
      emit_entry(out, name, config.sample.hmc_steps);
    }
  };
  option.check = [](const Reader& in, const Config& c) {
    if (c.sample.hmc_steps > 0 && !c.sample.resample) {
      in.fail("sample.hmc_steps",
              "HMC refines the resampled samples: set sample.resample: true "
              "or sample.hmc_steps: 0");
    }
  };
  return option;
}

const std::vector<Option>& options() {
  static const std::vector<Option> table = {
      structured("target.name", join(kTargetNames), "(required)",
                 "the distribution to sample (docs/targets.md)"),
      structured("target.dim", "integer >= 1", "(required)",
                 "d; optional for gmm40, logreg* and lgcp, which take it from the data, and for "
                 "torchscript, from the module's integer attribute dim (an error if it differs)"),
      structured("target.mean", "number or d numbers", "0", "gaussian: the mean"),
      structured("target.covariance", "number, d numbers or d x d matrix", "I",
                 "gaussian: the covariance (a number or a diagonal list keep no d x d matrix)"),
      structured("target.weights", "K numbers > 0", "equal",
                 "gmm: the component weights (normalised)"),
      structured("target.means", "K lists of d numbers", "(required)", "gmm: the component means"),
      structured("target.covariances", "K (or 1 shared) covariances", "I",
                 "gmm: each a number, d numbers or a d x d matrix"),
      structured("target.data", "file path", "the project's copy in data/",
                 "gmm40, logreg*, lgcp: the CSV file (relative to the current directory; "
                 "required for logreg)"),
      structured("target.label", "column name", "Class",
                 "logreg*: the 0/1 label column; every other column is a feature"),
      structured("target.grid", "integer in [1, 46340]", "40", "lgcp: G, a G x G grid (d = G²)"),
      structured("target.whitened", "true or false", "false",
                 "lgcp: sample u with x = μ₀ + L u instead of x"),
      structured("target.module", "file path", "(required)",
                 "torchscript: the TorchScript file of log π̃"),
      structured("target.method", "method name", "log_prob or forward",
                 "torchscript: the method to call (default: log_prob if the module has one, else "
                 "forward)"),
      structured("target.names", "list of names", "the module's names, else x[1] ... x[d]",
                 "parameter names of the InferenceData group /posterior (one per parameter)"),

      choice<&Config::sde, &SdeConfig::schedule>(
          "sde.schedule", kSchedules,
          "constant (β ≡ sde.beta) or linear (sde.beta_min → sde.beta_max)"),
      plain<&Config::sde, &SdeConfig::beta>("sde.beta", "> 0", "β of the constant schedule",
                                            [](const Reader& in, const Config& c) {
                                              in.require(c.sde.beta > 0.0, "sde.beta", "> 0",
                                                         c.sde.beta);
                                            }),
      plain<&Config::sde, &SdeConfig::beta_min>(
          "sde.beta_min", "> 0", "β at t = 0 of the linear schedule",
          [](const Reader& in, const Config& c) {
            if (c.sde.schedule != "linear") return;
            in.require(c.sde.beta_min > 0.0, "sde.beta_min", "> 0 (schedule: linear)",
                       c.sde.beta_min);
          }),
      plain<&Config::sde, &SdeConfig::beta_max>(
          "sde.beta_max", "> sde.beta_min", "β at t = T of the linear schedule",
          [](const Reader& in, const Config& c) {
            if (c.sde.schedule != "linear") return;
            in.require(c.sde.beta_max > c.sde.beta_min, "sde.beta_max",
                       "> sde.beta_min = " + format_number(c.sde.beta_min) + " (schedule: linear)",
                       c.sde.beta_max);
          }),
      plain<&Config::sde, &SdeConfig::horizon>("sde.horizon", "> 0", "T",
                                               [](const Reader& in, const Config& c) {
                                                 in.require(c.sde.horizon > 0.0, "sde.horizon",
                                                            "> 0", c.sde.horizon);
                                               }),
      plain<&Config::sde, &SdeConfig::steps>(
          "sde.steps", "in [1, 2^24]", "N, the number of uniform steps",
          [](const Reader& in, const Config& c) {
            // The network's time input is float32: finer steps would not be distinct times.
            in.require(c.sde.steps >= 1 && c.sde.steps <= kMaxSteps, "sde.steps",
                       "in [1, 2^24] (the network's float32 time input resolves no finer steps)",
                       c.sde.steps);
          }),
      choice<&Config::sde, &SdeConfig::integrator>(
          "sde.integrator", kIntegrators,
          "euler (Euler–Maruyama) or exponential: the linear part of the drift integrated "
          "exactly, so the untrained model's steps are the exact OU transitions; use it in high "
          "d, where Euler's per-step mismatch makes the weights degenerate"),

      plain<&Config::network, &NetworkConfig::width>(
          "network.width", "in [1, 65536]", "hidden width of Z_θ",
          [](const Reader& in, const Config& c) {
            in.require(c.network.width >= 1 && c.network.width <= kMaxWidth, "network.width",
                       "in [1, 65536]", c.network.width);
          }),
      plain<&Config::network, &NetworkConfig::depth>(
          "network.depth", "in [1, 1000]", "number of hidden layers of Z_θ",
          [](const Reader& in, const Config& c) {
            in.require(c.network.depth >= 1 && c.network.depth <= kMaxDepth, "network.depth",
                       "in [1, 1000]", c.network.depth);
          }),
      choice<&Config::network, &NetworkConfig::activation>("network.activation", kActivations,
                                                           "the hidden layers' activation"),
      plain<&Config::network, &NetworkConfig::time_features>(
          "network.time_features", "in [0, 1000]",
          "F: the time features τ = s/T and sin/cos(kπτ), k = 1..F",
          [](const Reader& in, const Config& c) {
            in.require(c.network.time_features >= 0 && c.network.time_features <= kMaxTimeFeatures,
                       "network.time_features", "in [0, 1000]", c.network.time_features);
          }),
      plain<&Config::network, &NetworkConfig::y0_residual>(
          "network.y0_residual", "true or false", "a small residual network r_θ(X₀) in Y₀"),
      plain<&Config::network, &NetworkConfig::gain>(
          "network.gain", "true or false",
          "a second output head G_θ(s, x) < √b: Z_θ = MLP + (G_θ − √b) ⊙ x, for targets whose "
          "scale "
          "in some coordinates depends on others (hierarchical models, funnel.yaml); each "
          "coordinate's linear part is integrated exactly over a step (docs/design.md); needs "
          "sde.integrator: exponential and detached paths",
          [](const Reader&, const Config& c) {
            if (c.network.gain && c.sde.integrator != "exponential") {
              throw Error("network.gain: the gain's exact step needs sde.integrator: exponential");
            }
            if (c.network.gain && !c.train.detach_paths) {
              throw Error(
                  "network.gain: needs train.detach_paths: true (the coupled pass has no "
                  "exact gain step)");
            }
          }),
      plain<&Config::network, &NetworkConfig::score>(
          "network.score", "true or false",
          "a target-score feature: Z_θ = … + √b a_θ(s) φ(x), φ = 10 tanh((∇log π̃(x) + x) / 10) "
          "per coordinate, a_θ a learnt function of time starting at 0; one gradient of log π̃ per "
          "path and step (training and sampling); for posteriors far from Gaussian in many "
          "coordinates (lgcp.yaml); needs detached paths and sample.method: sde",
          [](const Reader&, const Config& c) {
            if (c.network.score && !c.train.detach_paths) {
              throw Error(
                  "network.score: needs train.detach_paths: true (the coupled pass would need "
                  "second derivatives of log π̃)");
            }
            if (c.network.score && c.sample.method != "sde") {
              throw Error(
                  "network.score: needs sample.method: sde (the probability-flow ODE would need "
                  "the trace of log π̃'s Hessian)");
            }
          }),
      plain<&Config::network, &NetworkConfig::blocks>(
          "network.blocks", ">= 1, divides d",
          "k > 1: one MLP shared by the k blocks of d/k consecutive coordinates, each block of Z "
          "from its block of x and s; for targets that are products of identical factors "
          "(many_well: 16 blocks of 2)",
          [](const Reader& in, const Config& c) {
            in.require(c.network.blocks >= 1, "network.blocks", ">= 1", c.network.blocks);
          }),

      plain<&Config::train, &TrainConfig::iterations>(
          "train.iterations", ">= 0", "training iterations",
          [](const Reader& in, const Config& c) {
            in.require(c.train.iterations >= 0, "train.iterations", ">= 0", c.train.iterations);
          }),
      plain<&Config::train, &TrainConfig::paths>(
          "train.paths", ">= 2", "M, paths per iteration over all ranks",
          [](const Reader& in, const Config& c) {
            // The loss is the residual's variance over the paths: one path has none to learn
            // from.
            in.require(c.train.paths >= 2, "train.paths",
                       ">= 2 (the loss is a variance over paths)", c.train.paths);
          }),
      plain<&Config::train, &TrainConfig::seed>("train.seed", "integer in [0, 2^64)",
                                                "seed of the training noise and initialisation"),
      plain<&Config::train, &TrainConfig::lr>("train.lr", "> 0", "Adam learning rate",
                                              [](const Reader& in, const Config& c) {
                                                in.require(c.train.lr > 0.0, "train.lr", "> 0",
                                                           c.train.lr);
                                              }),
      choice<&Config::train, &TrainConfig::lr_schedule>(
          "train.lr_schedule", kLrSchedules, "cosine: from train.lr to train.lr_final; constant"),
      plain<&Config::train, &TrainConfig::lr_final>(
          "train.lr_final", "in (0, train.lr]", "the learning rate at the last iteration (cosine)",
          [](const Reader& in, const Config& c) {
            in.require(c.train.lr_final > 0.0 && c.train.lr_final <= c.train.lr, "train.lr_final",
                       "> 0 and <= train.lr = " + format_number(c.train.lr), c.train.lr_final);
          }),
      plain<&Config::train, &TrainConfig::grad_clip>(
          "train.grad_clip", ">= 0", "global gradient-norm bound (0: off)",
          [](const Reader& in, const Config& c) {
            in.require(c.train.grad_clip >= 0.0, "train.grad_clip", ">= 0 (0 disables clipping)",
                       c.train.grad_clip);
          }),
      plain<&Config::train, &TrainConfig::anneal_gamma0>(
          "train.anneal_gamma0", "in (0, 1]",
          "annealing: γ rises linearly from γ₀ to 1 over train.anneal_fraction of the iterations "
          "(γ₀ = 1: off)",
          [](const Reader& in, const Config& c) {
            in.require(c.train.anneal_gamma0 > 0.0 && c.train.anneal_gamma0 <= 1.0,
                       "train.anneal_gamma0", "in (0, 1]", c.train.anneal_gamma0);
          }),
      plain<&Config::train, &TrainConfig::anneal_fraction>(
          "train.anneal_fraction", "in (0, 1]", "the share of iterations over which γ rises to 1",
          [](const Reader& in, const Config& c) {
            in.require(c.train.anneal_fraction > 0.0 && c.train.anneal_fraction <= 1.0,
                       "train.anneal_fraction", "in (0, 1]", c.train.anneal_fraction);
          }),
      choice<&Config::train, &TrainConfig::anneal_path>(
          "train.anneal_path", kAnnealPaths,
          "bridge: the terminal condition γ log π̃ + (1 − γ) log N(0, I), exact for the untrained "
          "model at γ = 0; tempered: γ log π̃, which keeps every mode of a mixture at its share "
          "while γ rises (gmm40.yaml)"),
      choice<&Config::train, &TrainConfig::y_step>(
          "train.y_step", kYSteps,
          "the Y recursion of training: exact, Y += log q_n − log k_n (the loss is the variance "
          "of the sampler's log weight, with train.explore 0, network.y0_residual off and "
          "gamma 1); euler, the Euler step of dY (the seed method's; its error grows with d)"),
      plain<&Config::train, &TrainConfig::detach_paths>(
          "train.detach_paths", "true or false",
          "false: the coupled deep BSDE (gradients through X and ∇ log π̃)"),
      plain<&Config::train, &TrainConfig::constant_memory>(
          "train.constant_memory", "true or false",
          "re-simulate the paths for the backward: memory independent of sde.steps (for very "
          "high d; ~1.3x the time); needs detached paths",
          [](const Reader&, const Config& c) {
            if (c.train.constant_memory && !c.train.detach_paths) {
              throw Error(
                  "train.constant_memory: re-simulating the paths needs train.detach_paths: true "
                  "(the coupled mode back-propagates through X and keeps its graph)");
            }
          }),
      plain<&Config::train, &TrainConfig::explore>(
          "train.explore", "in [0, 1)",
          "share of paths driven by the reference OU control instead of the model (off-policy "
          "exploration against mode collapse); needs detached paths",
          [](const Reader& in, const Config& c) {
            in.require(c.train.explore >= 0.0 && c.train.explore < 1.0, "train.explore",
                       "in [0, 1)", c.train.explore);
            if (c.train.explore > 0.0 && !c.train.detach_paths) {
              throw Error("train.explore: exploration paths need train.detach_paths: true");
            }
          }),
      plain<&Config::train, &TrainConfig::tilt>(
          "train.tilt", "in [0, 1]",
          "κ: the loss weights each path ∝ w^κ, w its importance weight, so that regions the "
          "model under-samples pull harder (funnel.yaml uses 0.3, gmm40.yaml 0.1; keep κ times "
          "the residuals' sd below ~1, docs/design.md)",
          [](const Reader& in, const Config& c) {
            in.require(c.train.tilt >= 0.0 && c.train.tilt <= 1.0, "train.tilt",
                       "in [0, 1] (0: every path weighs the same, 1: paths weighted by their "
                       "importance weights)",
                       c.train.tilt);
          }),
      plain<&Config::train, &TrainConfig::log_every>(
          "train.log_every", ">= 0", "progress interval (0: about 20 lines)",
          [](const Reader& in, const Config& c) {
            in.require(c.train.log_every >= 0, "train.log_every", ">= 0", c.train.log_every);
          }),
      plain<&Config::train, &TrainConfig::checkpoint_every>(
          "train.checkpoint_every", ">= 0",
          "checkpoint interval in iterations (0: only on a signal)",
          [](const Reader& in, const Config& c) {
            in.require(c.train.checkpoint_every >= 0, "train.checkpoint_every",
                       ">= 0 (0: only on a signal)", c.train.checkpoint_every);
          }),

      plain<&Config::sample, &SampleConfig::count>(
          "sample.count", ">= 1", "samples drawn",
          [](const Reader& in, const Config& c) {
            in.require(c.sample.count >= 1, "sample.count", ">= 1", c.sample.count);
            // Systematic resampling computes positions exactly in 128-bit integers
            // (posterior.hpp).
            in.require(!c.sample.resample || c.sample.count <= kMaxResampleCount, "sample.count",
                       "<= 2^31 - 1 with sample.resample: true", c.sample.count);
          }),
      plain<&Config::sample, &SampleConfig::seed>("sample.seed", "integer in [0, 2^64)",
                                                  "seed of the sampling noise"),
      plain<&Config::sample, &SampleConfig::batch>(
          "sample.batch", ">= 1", "paths per rank held in memory at once",
          [](const Reader& in, const Config& c) {
            in.require(c.sample.batch >= 1, "sample.batch", ">= 1", c.sample.batch);
          }),
      plain<&Config::sample, &SampleConfig::model>(
          "sample.model", "file path",
          "network parameters for rbsde sample (empty: output.path with .pt)"),
      choice<&Config::sample, &SampleConfig::method>(
          "sample.method", kSampleMethods,
          "sde: the reverse SDE, exact weights; ode: the probability-flow ODE of the same "
          "network, approximate weights (method.md §5)"),
      choice<&Config::sample, &SampleConfig::divergence>(
          "sample.divergence", kDivergences,
          "ode: div Z_θ exact (d vector–Jacobian products), hutchinson (random probes), or auto "
          "(exact for d <= 32)"),
      plain<&Config::sample, &SampleConfig::probes>(
          "sample.probes", "in [1, 2^28]", "ode with hutchinson: Rademacher probes per divergence",
          [](const Reader& in, const Config& c) {
            // The probe index keys the 28 epoch bits of the noise counter (noise.hpp).
            in.require(c.sample.probes >= 1 && c.sample.probes <= kMaxProbes, "sample.probes",
                       "in [1, 2^28]", c.sample.probes);
          }),
      plain<&Config::sample, &SampleConfig::resample>("sample.resample", "true or false",
                                                      "systematic resampling into /resampled"),
      hmc_steps_option(),
      plain<&Config::sample, &SampleConfig::leapfrog_steps>(
          "sample.leapfrog_steps", "in [1, 1000]",
          "leapfrog steps per HMC iteration (1: MALA); each costs one gradient of log pi",
          [](const Reader& in, const Config& c) {
            in.require(c.sample.leapfrog_steps >= 1 && c.sample.leapfrog_steps <= 1000,
                       "sample.leapfrog_steps", "in [1, 1000]", c.sample.leapfrog_steps);
          }),
      plain<&Config::sample, &SampleConfig::hmc_step_size>(
          "sample.hmc_step_size", ">= 0", "HMC leapfrog step size (0: adapted)",
          [](const Reader& in, const Config& c) {
            in.require(c.sample.hmc_step_size >= 0.0, "sample.hmc_step_size", ">= 0 (0: adapted)",
                       c.sample.hmc_step_size);
          }),
      plain<&Config::sample, &SampleConfig::hmc_smallest_step>(
          "sample.hmc_smallest_step", "in (0, 1]",
          "HMC: each chain's step size is drawn log-uniform on [this x step size, step size] "
          "every iteration (1: the same for every chain)",
          [](const Reader& in, const Config& c) {
            in.require(c.sample.hmc_smallest_step > 0.0 && c.sample.hmc_smallest_step <= 1.0,
                       "sample.hmc_smallest_step", "in (0, 1]", c.sample.hmc_smallest_step);
          }),
      plain<&Config::sample, &SampleConfig::model_moves>(
          "sample.model_moves", ">= 0",
          "refinement: every this many HMC iterations each chain proposes a fresh path of the "
          "trained model, accepted on its exact weight (0: never; needs sample.method: sde)",
          [](const Reader& in, const Config& c) {
            in.require(c.sample.model_moves >= 0, "sample.model_moves", ">= 0",
                       c.sample.model_moves);
            if (c.sample.model_moves > 0 && c.sample.method != "sde") {
              in.fail("sample.model_moves",
                      "needs sample.method: sde (the probability-flow ODE's weights are not "
                      "exact); set sample.model_moves: 0");
            }
            // A move's index keys 27 bits of the noise counter's epoch (noise.hpp).
            in.require(c.sample.model_moves == 0 || c.sample.hmc_steps == kHmcStepsAuto ||
                           c.sample.hmc_steps / c.sample.model_moves < (int64_t{1} << 26),
                       "sample.model_moves", ">= sample.hmc_steps / 2^26 (or 0)",
                       c.sample.model_moves);
          }),
      plain<&Config::sample, &SampleConfig::psis>(
          "sample.psis", "true or false",
          "also the posterior moments with Pareto-smoothed weights (/estimates/psis_mean, _sd)"),

      choice<&Config::reference, &ReferenceConfig::method>(
          "reference.method", kReferenceMethods,
          "rbsde reference: mala, long-run MALA chains for the posterior moments; smc, "
          "adaptive-tempering SMC for log 𝒵 (with its spread over reference.runs) and the "
          "moments"),
      plain<&Config::reference, &ReferenceConfig::chains>(
          "reference.chains", ">= 2", "mala: chains, shared over the ranks",
          [](const Reader& in, const Config& c) {
            // The standard error of the mean is the spread of the chains' means.
            in.require(c.reference.chains >= 2, "reference.chains", ">= 2", c.reference.chains);
          }),
      plain<&Config::reference, &ReferenceConfig::warmup>(
          "reference.warmup", ">= 4", "mala: adaptation steps per chain",
          [](const Reader& in, const Config& c) {
            // The warm-up is cut in quarters (mcmc.hpp).
            in.require(c.reference.warmup >= 4, "reference.warmup", ">= 4", c.reference.warmup);
          }),
      plain<&Config::reference, &ReferenceConfig::steps>(
          "reference.steps", ">= 1", "mala: sampling steps per chain",
          [](const Reader& in, const Config& c) {
            in.require(c.reference.steps >= 1, "reference.steps", ">= 1", c.reference.steps);
          }),
      plain<&Config::reference, &ReferenceConfig::particles>(
          "reference.particles", "in [2, 2^31)", "smc: particles, shared over the ranks",
          [](const Reader& in, const Config& c) {
            // Systematic resampling's positions are exact below 2^31 (core/resampling.hpp).
            in.require(c.reference.particles >= 2 && c.reference.particles < (int64_t{1} << 31),
                       "reference.particles", "in [2, 2^31)", c.reference.particles);
          }),
      plain<&Config::reference, &ReferenceConfig::moves>(
          "reference.moves", "in [1, 21474]", "smc: MALA steps per temperature",
          [](const Reader& in, const Config& c) {
            // The moves' noise steps of a run stay below the resampling steps (bsde/smc.hpp).
            static_assert(kSmcMaxMoves == 21474, "the accepted range names kSmcMaxMoves");
            in.require(c.reference.moves >= 1 && c.reference.moves <= kSmcMaxMoves,
                       "reference.moves", "in [1, 21474]", c.reference.moves);
          }),
      plain<&Config::reference, &ReferenceConfig::runs>(
          "reference.runs", "in [1, 10^6]", "smc: independent runs, whose spread is log 𝒵's error",
          [](const Reader& in, const Config& c) {
            in.require(c.reference.runs >= 1 && c.reference.runs <= 1000000, "reference.runs",
                       "in [1, 10^6]", c.reference.runs);
          }),
      plain<&Config::reference, &ReferenceConfig::ess>(
          "reference.ess", "in (0, 1)",
          "smc: the fraction of the particles' effective sample size each temperature step keeps",
          [](const Reader& in, const Config& c) {
            in.require(c.reference.ess > 0.0 && c.reference.ess < 1.0, "reference.ess", "in (0, 1)",
                       c.reference.ess);
          }),
      plain<&Config::reference, &ReferenceConfig::seed>("reference.seed", "integer in [0, 2^64)",
                                                        "rbsde reference: seed"),

      plain<&Config::output, &OutputConfig::path>(
          "output.path", "file path",
          "the output file (HDF5); the network and the checkpoint go next to it (.pt, .ckpt)",
          [](const Reader& in, const Config& c) {
            if (c.output.path.empty()) in.fail("output.path", "must be a non-empty file path");
          }),
      plain<&Config::parallel, &ParallelConfig::threads>(
          "parallel.threads", ">= 0", "threads per rank (0: from the environment)",
          [](const Reader& in, const Config& c) {
            in.require(c.parallel.threads >= 0, "parallel.threads",
                       ">= 0 (0 = from the environment)", c.parallel.threads);
          }),

      structured("precondition.kind", join(kPreconditionKinds),
                 "auto for the posteriors (logreg*, lgcp, torchscript) and for d > 1000 "
                 "(except the mixtures gmm, gmm40, many_well), else none",
                 "the affine map x = m + L x̂ under which training and sampling run "
                 "(variational: the Gaussian that maximises the ELBO; auto: the Laplace map "
                 "where its own importance weights are usable (Pareto k^ <= 0.7), else the one "
                 "with the highest ELBO of it and the variational Gaussians fitted from the "
                 "prior and from it)"),
      structured("precondition.centre", "number or d numbers", "0", "config: m"),
      structured("precondition.scale", "number, d numbers or d x d matrix", "1",
                 "config: the diagonal of L, or a symmetric positive definite covariance whose "
                 "Cholesky factor is L"),
      structured("precondition.form", join(kPreconditionForms), "auto",
                 "laplace, pilot, variational, auto: cholesky (full L), diagonal (marginal "
                 "standard deviations) or curvature (laplace: 1/sqrt of the Hessian's diagonal, "
                 "O(d) memory); auto: cholesky up to d = 4096, above it curvature (diagonal for "
                 "pilot and variational)"),
      structured("precondition.iterations", "integer >= 1", "1000",
                 "laplace, auto: L-BFGS iterations at most"),
      structured("precondition.variational_iterations", "integer >= 1", "1000",
                 "variational, auto: iterations of the ELBO's stochastic gradient ascent"),
      structured("precondition.pilot", "file path", "(required for pilot)",
                 "pilot: the output file of an earlier run"),
  };
  return table;
}

const std::vector<Section>& sections() {
  static const std::vector<Section> list = [] {
    std::vector<Section> result;
    for (const Option& option : options()) {
      const std::size_t dot = option.key.find('.');
      const std::string section = option.key.substr(0, dot);
      if (result.empty() || result.back().name != section) result.push_back({section, {}});
      result.back().keys.push_back(option.key.substr(dot + 1));
    }
    return result;
  }();
  return list;
}

/// Reads and checks every key of one plain value (all but target.* and precondition.*).
void read_plain_options(const Reader& in, Config& config) {
  for (const Option& option : options()) {
    if (option.read) option.read(in, option.key, config);
  }
  for (const Option& option : options()) {
    if (option.chosen) in.require_one_of(option.key, option.chosen(config), option.choices);
    if (option.check) option.check(in, config);
  }
}

/// The key's name within its section.
const char* short_name(const Option& option) {
  return option.key.c_str() + option.key.find('.') + 1;
}

std::string emit_resolved(const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  emit_target(out, config.target);
  for (const Section& section : sections()) {
    if (section.name == "target" || section.name == "precondition") continue;
    out << YAML::Key << section.name << YAML::Value << YAML::BeginMap;
    for (const Option& option : options()) {
      if (option.emit && option.key.compare(0, section.name.size() + 1, section.name + ".") == 0) {
        option.emit(out, short_name(option), config);
      }
    }
    out << YAML::EndMap;
  }
  emit_precondition(out, config.precondition);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

/// The default of a key as the resolved configuration writes it.
std::string default_text(const Option& option) {
  if (!option.emit) return option.fixed_default;
  YAML::Emitter out;
  out << YAML::BeginMap;
  option.emit(out, "value", Config{});
  out << YAML::EndMap;
  const std::string text = YAML::Load(out.c_str())["value"].Scalar();
  return text.empty() ? "(empty)" : text;
}

std::string accepted_text(const Option& option) {
  return option.choices.empty() ? option.accepted : join(option.choices);
}

YAML::Node load_yaml(const std::string& yaml_text, const std::string& source) {
  try {
    // One document: a second one (after ---) would otherwise be ignored without a word.
    const std::vector<YAML::Node> documents = YAML::LoadAll(yaml_text);
    if (documents.size() > 1) {
      throw Error(source + ": holds " + std::to_string(documents.size()) +
                  " YAML documents (separated by ---); a configuration is one document");
    }
    return documents.empty() ? YAML::Node() : documents.front();
  } catch (const YAML::ParserException& e) {
    // yaml-cpp counts lines and columns from 0.
    throw Error(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                    const std::string& source) {
  try {
    YAML::Node root = load_yaml(yaml_text, source);
    check_structure(root, source);
    std::map<std::string, std::string> overridden = apply_overrides(root, overrides);
    const Reader in(root, source, std::move(overridden));
    Config config;
    config.target = read_target(in);
    read_plain_options(in, config);
    config.precondition = read_precondition(in, config.target.name, config.target.dim);
    config.resolved_yaml = emit_resolved(config);
    return config;
  } catch (const YAML::Exception& e) {
    // Anything yaml-cpp raises beyond syntax errors (checked above) still names the source.
    throw Error(source + ": " + e.what());
  }
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  // An ifstream opens a directory without complaint and then reads nothing. (The error_code
  // overload does not throw; an unreadable path is reported by the open below.)
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    throw Error("cannot read config file '" + path + "': it is a directory");
  }
  std::ifstream file(path);
  if (!file) {
    throw Error("cannot read config file '" + path +
                "': " + std::generic_category().message(errno));
  }
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) {
    throw Error("cannot read config file '" + path +
                "': " + std::generic_category().message(errno));
  }
  return parse_config(text, overrides, path);
}

std::string options_help() {
  std::string text = "configuration keys (section.key: accepted values [default])\n";
  for (const Option& option : options()) {
    text += "\n  " + option.key + ": " + accepted_text(option) + " [" + default_text(option) +
            "]\n      " + option.help + "\n";
  }
  return text;
}

std::string options_markdown() {
  std::string text = "| key | accepted | default | meaning |\n|---|---|---|---|\n";
  for (const Option& option : options()) {
    text += "| `" + option.key + "` | " + accepted_text(option) + " | " + default_text(option) +
            " | " + option.help + " |\n";
  }
  return text;
}

bool is_posterior_target(const std::string& name) { return contains(kPosteriorTargets, name); }

}  // namespace rbsde
