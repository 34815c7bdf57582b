// Keras weights in HDF5 (libhdf5's C API): the legacy layout (Keras 2, tf.keras, Keras 3's .h5)
// and Keras 3's model.weights.h5.
#include <hdf5.h>

#include <ATen/ops/empty.h>

#include <memory>
#include <mutex>

#include "graft/core/error.h"
#include "graft/keras/internal.h"

namespace graft::keras::internal {
namespace {

// An hid_t closed by its own close function.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    std::swap(id_, o.id_);
    std::swap(close_, o.close_);
    return *this;
  }
  ~Handle() {
    if (id_ >= 0 && close_) close_(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// A Keras HDF5 file, opened from disk or from bytes in memory (a member of a .keras zip).
class File {
 public:
  File(const std::string& path, const std::string& image) : origin_(path) {
    static std::once_flag quiet;
    std::call_once(quiet, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
    if (image.empty()) {
      file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    } else {
      image_ = image;  // the core driver reads from this buffer for the file's lifetime
      Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
      if (fapl.ok() && H5Pset_fapl_core(fapl.get(), 1 << 16, 0) >= 0 &&
          H5Pset_file_image(fapl.get(), image_.data(), image_.size()) >= 0) {
        file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
      }
    }
    if (!file_.ok()) throw Error(path + ": not a readable HDF5 file (truncated or corrupt?)");
  }

  const std::string& origin() const { return origin_; }
  hid_t id() const { return file_.get(); }

  bool has_group(hid_t base, const std::string& path) const {
    if (path.empty()) return true;
    // Check each level: H5Lexists fails on a missing intermediate.
    size_t start = 0;
    while (true) {
      const size_t slash = path.find('/', start);
      const std::string prefix = path.substr(0, slash);
      if (H5Lexists(base, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    H5O_info_t info;
    if (H5Oget_info_by_name(base, path.c_str(), &info, H5P_DEFAULT) < 0) return false;
    return info.type == H5O_TYPE_GROUP;
  }

  Handle group(const std::string& path) const {
    if (!has_group(id(), path)) throw Error(origin_ + ": has no group '" + path + "'");
    Handle g(H5Gopen2(id(), path.empty() ? "/" : path.c_str(), H5P_DEFAULT), H5Gclose);
    if (!g.ok()) throw Error(origin_ + ": cannot open group '" + path + "' (corrupt file?)");
    return g;
  }

  // A string attribute as a list (a scalar gives one entry; an empty numeric array none), or
  // nullopt-like false when absent. Keras splits long lists into name0, name1, …
  bool strings(hid_t obj, const std::string& name, std::vector<std::string>& out) const {
    if (H5Aexists(obj, name.c_str()) > 0) {
      read_strings(obj, name, out);
      return true;
    }
    bool found = false;
    for (int i = 0; H5Aexists(obj, (name + std::to_string(i)).c_str()) > 0; ++i) {
      read_strings(obj, name + std::to_string(i), out);
      found = true;
    }
    return found;
  }

  // A float dataset under `base` as a tensor of the expected shape.
  at::Tensor dataset(hid_t base, const std::string& path, const std::vector<int64_t>& expected,
                     const std::string& what) const {
    if (H5Lexists(base, path.c_str(), H5P_DEFAULT) <= 0) {
      throw Error(origin_ + ": has no dataset '" + path + "' (" + what + ")");
    }
    Handle d(H5Dopen2(base, path.c_str(), H5P_DEFAULT), H5Dclose);
    if (!d.ok()) throw Error(origin_ + ": cannot open dataset '" + path + "' (corrupt file?)");
    Handle space(H5Dget_space(d.get()), H5Sclose);
    const int rank = space.ok() ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank < 0 || rank > 8) throw Error(origin_ + ": dataset '" + path + "' has a bad shape (corrupt file?)");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    const std::vector<int64_t> got(dims.begin(), dims.end());
    if (got != expected) {
      std::string g = "(", e = "(";
      for (size_t i = 0; i < got.size(); ++i) g += (i ? ", " : "") + std::to_string(got[i]);
      for (size_t i = 0; i < expected.size(); ++i) e += (i ? ", " : "") + std::to_string(expected[i]);
      throw Error(what + " ('" + path + "') has shape " + g + ") in the file, the config needs " + e +
                  ") (do the config and the weights file belong together?)");
    }
    Handle type(H5Dget_type(d.get()), H5Tclose);
    const H5T_class_t cls = type.ok() ? H5Tget_class(type.get()) : H5T_NO_CLASS;
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
      throw Error(origin_ + ": dataset '" + path + "' is not numeric");
    }
    at::Tensor t = at::empty(expected, at::kFloat);
    if (t.numel() > 0 && H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0) {
      throw Error(origin_ + ": cannot read dataset '" + path + "' (truncated or corrupt file?)");
    }
    return t;
  }

 private:
  void read_strings(hid_t obj, const std::string& name, std::vector<std::string>& out) const {
    Handle a(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
    Handle type(a.ok() ? H5Aget_type(a.get()) : -1, H5Tclose);
    Handle space(a.ok() ? H5Aget_space(a.get()) : -1, H5Sclose);
    if (!type.ok() || !space.ok()) throw Error(origin_ + ": cannot read attribute '" + name + "' (corrupt file?)");
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    if (n < 0 || n > (1 << 24)) throw Error(origin_ + ": attribute '" + name + "' has a bad size");
    if (H5Tget_class(type.get()) != H5T_STRING) {
      if (n == 0) return;  // Keras stores an empty list as a float64 array of shape (0,)
      throw Error(origin_ + ": attribute '" + name + "' is not a string list");
    }
    if (H5Tis_variable_str(type.get()) > 0) {
      std::vector<char*> buf(static_cast<size_t>(n), nullptr);
      Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
      H5Tset_size(mem.get(), H5T_VARIABLE);
      H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
      if (H5Aread(a.get(), mem.get(), buf.data()) < 0) {
        throw Error(origin_ + ": cannot read attribute '" + name + "' (corrupt file?)");
      }
      for (char* s : buf) {
        out.emplace_back(s ? s : "");
        if (s) H5free_memory(s);
      }
      return;
    }
    const size_t size = H5Tget_size(type.get());
    if (size == 0 || size > (1 << 26) || static_cast<size_t>(n) * size > (1u << 28)) {
      throw Error(origin_ + ": attribute '" + name + "' has a bad size");
    }
    std::string buf(static_cast<size_t>(n) * size, '\0');
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), size);
    H5Tset_strpad(mem.get(), H5T_STR_NULLPAD);
    if (H5Aread(a.get(), mem.get(), buf.data()) < 0) {
      throw Error(origin_ + ": cannot read attribute '" + name + "' (corrupt file?)");
    }
    for (hssize_t i = 0; i < n; ++i) {
      std::string s = buf.substr(static_cast<size_t>(i) * size, size);
      s.resize(s.find('\0') == std::string::npos ? s.size() : s.find('\0'));
      out.push_back(std::move(s));
    }
  }

  std::string origin_, image_;
  Handle file_;
};

std::string last_layer_component(const std::string& weight_name) {
  const size_t slash = weight_name.rfind('/');
  if (slash == std::string::npos || slash == 0) return "";
  const size_t prev = weight_name.rfind('/', slash - 1);
  return weight_name.substr(prev == std::string::npos ? 0 : prev + 1,
                            slash - (prev == std::string::npos ? 0 : prev + 1));
}

class LegacyStore : public WeightStore {
 public:
  LegacyStore(const std::string& path, const std::string& image, std::string root)
      : file_(path, image), root_(std::move(root)) {}

  std::vector<at::Tensor> layer_weights(const LayerPath& p,
                                        const std::vector<std::vector<int64_t>>& shapes) override {
    const std::string group = (root_.empty() ? "" : root_ + "/") + p.names.at(0);
    if (!file_.has_group(file_.id(), group)) {
      throw Error(file_.origin() + " has no weights group '" + group + "' for it" +
                  (root_.empty() ? "" : " (a missing layer group: was the file saved from this model?)"));
    }
    Handle g = file_.group(group);
    std::vector<std::string> names;
    file_.strings(g.get(), "weight_names", names);
    if (p.names.size() > 1) {  // a layer of a nested model: its weights carry its name
      std::vector<std::string> mine;
      for (const auto& n : names) {
        if (last_layer_component(n) == p.names.back()) mine.push_back(n);
      }
      names = mine;
    }
    if (names.size() != shapes.size()) {
      throw Error(file_.origin() + " has " + std::to_string(names.size()) + " weights for it, the config implies " +
                  std::to_string(shapes.size()) + " (do the config and the weights file belong together?)");
    }
    std::vector<at::Tensor> out;
    for (size_t i = 0; i < names.size(); ++i) {
      out.push_back(file_.dataset(g.get(), names[i], shapes[i], "weight " + std::to_string(i)));
    }
    return out;
  }

 private:
  File file_;
  std::string root_;
};

class Keras3Store : public WeightStore {
 public:
  Keras3Store(const std::string& origin, const std::string& image) : file_(origin, image) {}

  std::vector<at::Tensor> layer_weights(const LayerPath& p,
                                        const std::vector<std::vector<int64_t>>& shapes) override {
    std::string group;
    for (const auto& k : p.keys) group += (group.empty() ? "" : "/") + k;
    group += "/vars";
    if (!file_.has_group(file_.id(), group)) {
      throw Error(file_.origin() + " has no weights group '" + group + "' for it");
    }
    Handle g = file_.group(group);
    H5G_info_t info;
    if (H5Gget_info(g.get(), &info) < 0) throw Error(file_.origin() + ": cannot list '" + group + "'");
    if (info.nlinks != shapes.size()) {
      throw Error(file_.origin() + " has " + std::to_string(info.nlinks) + " weights in '" + group +
                  "', the config implies " + std::to_string(shapes.size()));
    }
    std::vector<at::Tensor> out;
    for (size_t i = 0; i < shapes.size(); ++i) {
      out.push_back(file_.dataset(g.get(), std::to_string(i), shapes[i], "weight " + std::to_string(i)));
    }
    return out;
  }

 private:
  File file_;
};

}  // namespace

std::unique_ptr<WeightStore> hdf5_legacy_store(const std::string& path, const std::string& image,
                                               const std::string& group) {
  return std::make_unique<LegacyStore>(path, image, group);
}

std::unique_ptr<WeightStore> hdf5_keras3_store(const std::string& origin, const std::string& image) {
  return std::make_unique<Keras3Store>(origin, image);
}

std::string hdf5_root_string(const std::string& path, const std::string& image, const std::string& name) {
  File f(path, image);
  std::vector<std::string> v;
  if (!f.strings(f.id(), name, v) || v.empty()) return "";
  return v[0];
}

bool hdf5_has_group(const std::string& path, const std::string& image, const std::string& name) {
  File f(path, image);
  return f.has_group(f.id(), name);
}

}  // namespace graft::keras::internal
