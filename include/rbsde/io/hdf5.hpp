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

 private:
  hid_t id_;
  Close close_;
};

/// The most specific message on HDF5's error stack (its automatic printing is turned off).
std::string hdf5_error_detail();

}  // namespace rbsde
