// One name being looked up: what lookup() and readdirplus() carry between the steps of a lookup
// (lookup.cpp). Internal to the backend.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <string>

#include "backends/passthrough/passthrough.hpp"

namespace sandfs::passthrough {

struct PassthroughFs::Probe {
  std::string name;
  uint64_t next_offset = 0;  // readdirplus: where the listing continues after this entry
  uint32_t host_dtype = 0;   // readdirplus: d_type from getdents, for entries that fail
  uint64_t host_ino = 0;
  int error = 0;
  struct statx stx {};
  bool stat_ok = false;          // stx describes the object
  SharedFd fd;                   // O_PATH fd of the object (null when matched by name)
  std::shared_ptr<Inode> known;  // the tracked entry with this id, if any
  bool need_record = false;
  SharedFd record_fd;  // what to read the record through
  long record_raw = 0;
  char record_buf[record_read_buffer] = {};
  RecordCache record;
};

}  // namespace sandfs::passthrough
