#pragma once
/// \file hdf5.hpp
/// What the io layer's HDF5 code shares: the owner of an identifier and the innermost message
/// of HDF5's error stack.
#include <hdf5.h>

#include <string>

namespace rbsde {

/// Owner of a short-lived HDF5 identifier (file, property list, dataspace, type, group,
/// dataset, attribute), closed with the function given.
class Hdf5Handle {
 public:
  using Close = herr_t (*)(hid_t);
  Hdf5Handle(hid_t id, Close close) : id_(id), close_(close) {}
  ~Hdf5Handle() {
    if (id_ >= 0) close_(id_);
  }
  Hdf5Handle(const Hdf5Handle&) = delete;
  Hdf5Handle& operator=(const Hdf5Handle&) = delete;
  hid_t get() const { return id_; }
  /// Gives up ownership: the caller closes the identifier.
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  hid_t id_;
  Close close_;
};

/// The root attribute (int32, 1) an rbsde output file receives last, just before it is closed
/// and renamed into place: a file without it is an interrupted run's or another program's.
inline constexpr const char* kCompleteAttribute = "complete";

/// True when `file` carries kCompleteAttribute with value 1.
inline bool is_complete_output(hid_t file) {
  if (H5Aexists(file, kCompleteAttribute) <= 0) return false;
  Hdf5Handle attribute(H5Aopen(file, kCompleteAttribute, H5P_DEFAULT), H5Aclose);
  int value = 0;
  return attribute.get() >= 0 && H5Aread(attribute.get(), H5T_NATIVE_INT, &value) >= 0 &&
         value == 1;
}

/// The most specific message on HDF5's error stack (its automatic printing is turned off).
std::string hdf5_error_detail();

}  // namespace rbsde
