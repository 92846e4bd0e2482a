#include "volumes/volume.hpp"

namespace sandfs::volumes {

std::string_view to_string(VolumeKind kind) {
  switch (kind) {
    case VolumeKind::dir:
      return "dir";
    case VolumeKind::disk:
      return "disk";
  }
  return "dir";
}

namespace {

bool ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

bool valid_volume_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || !ascii_alnum(name.front())) return false;
  for (char c : name) {
    if (!ascii_alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace sandfs::volumes
