// The microsandbox SDK volume API (src/http/msb_api.hpp) without a socket: the prefix, routing,
// base64url paths, the error mapping, and MsbApi::handle over a real VolumeStore in a temp dir.
#include "http/msb_api.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "backends/passthrough/quota.hpp"
#include "core/io/io_threads.hpp"
#include "volumes/mount_manager.hpp"
#include "volumes/volume_store.hpp"

using namespace sandfs;
using namespace sandfs::http;
using json = nlohmann::json;
using volumes::ErrorCode;

namespace {

MsbMatch msb_route(std::string_view path) {
  auto m = match_msb_route(path);
  INFO(path);
  REQUIRE(m.ok());
  return *m;
}

std::optional<std::string> prefix_of(std::string_view text) {
  std::string error;
  return parse_msb_prefix(text, error);
}

}  // namespace

TEST_CASE("msb prefix: matched whole, off when empty", "[http][msb]") {
  CHECK(strip_msb_prefix("/msb/v1/volumes", "/msb") ==
        std::optional<std::string_view>("/v1/volumes"));
  CHECK(strip_msb_prefix("/msb", "/msb") == std::optional<std::string_view>(""));
  CHECK_FALSE(strip_msb_prefix("/msbx/v1/volumes", "/msb"));
  CHECK_FALSE(strip_msb_prefix("/v1/volumes", "/msb"));
  CHECK_FALSE(strip_msb_prefix("/msb/v1/volumes", ""));
  CHECK(strip_msb_prefix("/a/b/v1/volumes", "/a/b") ==
        std::optional<std::string_view>("/v1/volumes"));

  CHECK(prefix_of("/msb") == std::optional<std::string>("/msb"));
  CHECK(prefix_of("/api/msb") == std::optional<std::string>("/api/msb"));
  CHECK(prefix_of("none") == std::optional<std::string>(""));
  CHECK_FALSE(prefix_of(""));
  CHECK_FALSE(prefix_of("msb"));
  CHECK_FALSE(prefix_of("/"));
  CHECK_FALSE(prefix_of("/msb/"));
  CHECK_FALSE(prefix_of("/a//b"));
  CHECK_FALSE(prefix_of("/a/../b"));
  CHECK_FALSE(prefix_of("/m%2fb"));
  CHECK_FALSE(prefix_of("/m?b"));
  CHECK_FALSE(prefix_of("/v1"));
  CHECK_FALSE(prefix_of("/v1/x"));
  CHECK_FALSE(prefix_of("/healthz"));
}

TEST_CASE("msb routes", "[http][msb]") {
  const std::string id = "0b7e8a52-1d3c-4f7a-9a61-2f0c4f1e9d10";
  CHECK(msb_route("/v1/volumes").route == MsbRoute::volumes);
  CHECK(msb_route("/v1/volumes/default").route == MsbRoute::volume_default);
  CHECK(msb_route("/v1/volumes/" + id).route == MsbRoute::volume);
  CHECK(msb_route("/v1/volumes/" + id).id == id);
  CHECK(msb_route("/v1/volumes/" + id + "/files").route == MsbRoute::files);
  CHECK(msb_route("/v1/volumes/" + id + "/files/content").route == MsbRoute::files_content);
  CHECK(msb_route("/v1/volumes/" + id + "/files/stat").route == MsbRoute::files_stat);
  CHECK(msb_route("/v1/volumes/" + id + "/files/exists").route == MsbRoute::files_exists);
  CHECK(msb_route("/v1/volumes/" + id + "/files/mkdir").route == MsbRoute::files_mkdir);
  CHECK(msb_route("/v1/volumes/" + id + "/files/copy").route == MsbRoute::files_copy);
  CHECK(msb_route("/v1/volumes/" + id + "/files/rename").route == MsbRoute::files_rename);
  CHECK(msb_route("/v1/sandboxes").route == MsbRoute::sandboxes);
  CHECK(msb_route("/v1/sandboxes/x/logs").route == MsbRoute::sandboxes);
  CHECK(msb_route("/v1/billing/usage/storage").route == MsbRoute::billing);
  // The default volume's files are reached through its id, as the SDK does.
  CHECK(msb_route("/v1/volumes/default/files").id == "default");
  for (const char* none :
       {"", "/", "/v1", "/v1/", "/v1/volumes/", "/v1/volumesx", "/v2/volumes",
        "/v1/volumes/x/files/", "/v1/volumes/x/files/other", "/v1/volumes/x/files/content/y",
        "/v1/volumes/x/other", "/v1/sandboxesx", "/healthz", "/v1/mounts"}) {
    INFO(none);
    CHECK(msb_route(none).route == MsbRoute::none);
  }
  CHECK(msb_route("/v1/volumes/a%2Db").id == "a-b");
  CHECK_FALSE(match_msb_route("/v1/volumes/a%00b").ok());
  CHECK_FALSE(match_msb_route("/v1/volumes/a%zz/files").ok());

  CHECK(msb_method_allowed(MsbRoute::volumes, Method::post));
  CHECK_FALSE(msb_method_allowed(MsbRoute::volumes, Method::delete_));
  CHECK(msb_method_allowed(MsbRoute::files_content, Method::put));
  CHECK_FALSE(msb_method_allowed(MsbRoute::files_content, Method::post));
  CHECK_FALSE(msb_method_allowed(MsbRoute::volume_default, Method::delete_));
  CHECK(msb_allowed_methods(MsbRoute::volume) == "GET, PATCH, DELETE");
  CHECK(msb_allowed_methods(MsbRoute::files) == "GET, DELETE");
  CHECK(msb_allowed_methods(MsbRoute::files_copy) == "POST");
}

TEST_CASE("x-msb-file-path: base64url without padding, canonical, UTF-8, no NUL", "[http][msb]") {
  for (const std::string& p :
       {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
        std::string("dir/file.txt"), std::string("\xc3\xa9t\xc3\xa9/\xe2\x82\xac"),
        std::string("\xf0\x9f\x98\x80"), std::string("a b+c/d?e")}) {
    const std::string enc = encode_msb_path(p);
    INFO(enc);
    CHECK(enc.find('=') == std::string::npos);
    auto dec = decode_msb_path(enc);
    REQUIRE(dec.ok());
    CHECK(*dec == p);
  }
  CHECK(encode_msb_path("a.txt") == "YS50eHQ");
  CHECK(encode_msb_path("\xfb\xff") == "-_8");  // the two url-safe characters
  auto expect_invalid = [](std::string_view text) {
    INFO(text);
    auto r = decode_msb_path(text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::invalid_path);
    return r.error().message;
  };
  CHECK_THAT(expect_invalid("YQ=="), Catch::Contains("padding"));
  CHECK_THAT(expect_invalid("YS50eHQ="), Catch::Contains("padding"));
  CHECK_THAT(expect_invalid("+_8"), Catch::Contains("alphabet"));  // standard base64's +
  CHECK_THAT(expect_invalid("a/b"), Catch::Contains("alphabet"));  // and /
  CHECK_THAT(expect_invalid("YS 0"), Catch::Contains("alphabet"));
  CHECK_THAT(expect_invalid("YS5%30"), Catch::Contains("alphabet"));
  CHECK_THAT(expect_invalid("Y"), Catch::Contains("length"));
  CHECK_THAT(expect_invalid("YR"), Catch::Contains("canonical"));  // 'a' is YQ
  CHECK_THAT(expect_invalid(encode_msb_path(std::string("a\0b", 3))), Catch::Contains("NUL"));
  CHECK_THAT(expect_invalid(encode_msb_path("\xff")), Catch::Contains("UTF-8"));
  CHECK_THAT(expect_invalid(encode_msb_path("\xc0\xaf")), Catch::Contains("UTF-8"));  // overlong /
  CHECK_THAT(expect_invalid(encode_msb_path("\xed\xa0\x80")),
             Catch::Contains("UTF-8"));                                               // surrogate
  CHECK_THAT(expect_invalid(encode_msb_path("\xe2\x82")), Catch::Contains("UTF-8"));  // truncated
  // A valid encoding of an escape decodes fine: the escape is the path rules' to refuse.
  CHECK(*decode_msb_path(encode_msb_path("../x")) == "../x");
}

TEST_CASE("msb error codes and statuses", "[http][msb]") {
  using P = std::pair<unsigned, std::string_view>;
  CHECK(msb_error_status(ErrorCode::volume_not_found) == P{404, "volume_not_found"});
  CHECK(msb_error_status(ErrorCode::file_not_found) == P{404, "volume_file_not_found"});
  CHECK(msb_error_status(ErrorCode::path_escape) == P{400, "invalid_volume_path"});
  CHECK(msb_error_status(ErrorCode::invalid_path) == P{400, "invalid_volume_path"});
  CHECK(msb_error_status(ErrorCode::invalid_name) == P{400, "invalid_request"});
  CHECK(msb_error_status(ErrorCode::invalid_config) == P{400, "invalid_request"});
  CHECK(msb_error_status(ErrorCode::volume_already_exists) == P{409, "volume_already_exists"});
  CHECK(msb_error_status(ErrorCode::quota_exceeded) == P{507, "quota_exceeded"});
  CHECK(msb_error_status(ErrorCode::unsupported) == P{501, "unsupported"});
  CHECK(msb_error_status(ErrorCode::internal) == P{500, "internal"});
  const json body = json::parse(msb_error_response(404, "volume_not_found", "gone").body);
  CHECK(body ==
        json{{"error", {{"code", "volume_not_found"}, {"message", "gone"}, {"details", nullptr}}}});
}

namespace {

struct MsbFixture {
  std::filesystem::path dir;
  std::unique_ptr<volumes::VolumeStore> store;
  std::unique_ptr<io::IoThreads> threads;
  std::unique_ptr<volumes::MountManager> mounts;
  std::unique_ptr<Api> api;
  std::unique_ptr<MsbApi> msb;

  explicit MsbFixture(std::string default_volume = "") {
    char tmpl[] = "/tmp/sandfs-msb-api-XXXXXX";
    dir = ::mkdtemp(tmpl);
    auto opened = volumes::VolumeStore::open(dir);
    REQUIRE(opened.ok());
    store = std::move(*opened);
    threads = std::make_unique<io::IoThreads>(1);
    mounts = std::make_unique<volumes::MountManager>(*store, *threads, dir.string());
    api = std::make_unique<Api>(*store, *mounts);
    msb = std::make_unique<MsbApi>(*store, *api, std::move(default_volume));
  }
  ~MsbFixture() {
    msb.reset();
    api.reset();
    mounts.reset();
    threads->stop();
    threads.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }

  ApiResponse call(Method method, const std::string& path, std::string body = {},
                   std::optional<std::string> file = std::nullopt,
                   std::optional<std::string> recursive = std::nullopt) {
    MsbRequest r;
    r.method = method;
    auto m = match_msb_route(path);
    REQUIRE(m.ok());
    r.match = std::move(*m);
    r.body = std::move(body);
    if (file) r.path_header = encode_msb_path(*file);
    r.recursive_header = std::move(recursive);
    return msb->handle(r);
  }
  // The raw header, for malformed encodings.
  ApiResponse call_raw(Method method, const std::string& path, std::string header) {
    MsbRequest r;
    r.method = method;
    r.match = *match_msb_route(path);
    r.path_header = std::move(header);
    return msb->handle(r);
  }

  std::string create(const std::string& name, const std::string& extra = "") {
    ApiResponse r = call(Method::post, "/v1/volumes",
                         R"({"name":")" + name + "\"" + (extra.empty() ? "" : "," + extra) + "}");
    INFO(r.body);
    REQUIRE(r.status == 200);
    return json::parse(r.body).at("id").get<std::string>();
  }
};

std::string code_of(const ApiResponse& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("error")) return "";
  return j["error"].value("code", "");
}

void write_file(MsbFixture& f, const std::string& id, const std::string& path,
                const std::string& data) {
  MsbRequest r;
  r.method = Method::put;
  r.match = *match_msb_route("/v1/volumes/" + id + "/files/content");
  r.path_header = encode_msb_path(path);
  auto up = f.msb->open_write(r);
  REQUIRE(up.ok());
  REQUIRE(up->writer->write(std::as_bytes(std::span(data.data(), data.size()))).ok());
  REQUIRE(up->writer->commit().ok());
}

}  // namespace

TEST_CASE("msb volumes: create, list, get, patch, delete", "[http][msb]") {
  MsbFixture f;
  const std::string id = f.create("alpha", R"("labels":{"env":"test"},"capacity_gib":2)");
  ApiResponse list = f.call(Method::get, "/v1/volumes");
  REQUIRE(list.status == 200);
  const json arr = json::parse(list.body);
  REQUIRE(arr.is_array());
  REQUIRE(arr.size() == 1);
  const json& v = arr[0];
  CHECK(v["id"] == id);
  CHECK(v["name"] == "alpha");
  CHECK(v["kind"] == "managed");
  CHECK(v["status"] == "active");
  CHECK(v["capacity_bytes"] == (uint64_t{2} << 30));
  CHECK(v["used_bytes"] == 0);
  CHECK(v["labels"] == json{{"env", "test"}});
  CHECK(v["created_at"].get<std::string>().ends_with("Z"));
  CHECK(v.contains("updated_at"));

  // Errors of create.
  ApiResponse dup = f.call(Method::post, "/v1/volumes", R"({"name":"alpha"})");
  CHECK(dup.status == 409);
  CHECK(code_of(dup) == "volume_already_exists");
  for (const char* bad : {R"({"name":"-x"})", R"({})", R"({"name":1})", "not json", "[]",
                          R"({"name":"b","capacity_gib":0})", R"({"name":"b","capacity_gib":1.5})",
                          R"({"name":"b","capacity_gib":-1})", R"({"name":"b","capacity_gib":"1"})",
                          R"({"name":"b","capacity_gib":1048577})", R"({"name":"b","labels":[]})",
                          R"({"name":"b","labels":{"k":1}})", R"({"name":"b","storage":"disk"})",
                          R"({"name":"b","quota_mib":5})"}) {
    INFO(bad);
    ApiResponse r = f.call(Method::post, "/v1/volumes", bad);
    CHECK(r.status == 400);
    CHECK(code_of(r) == "invalid_request");
  }
  CHECK(f.call(Method::post, "/v1/volumes", R"({"name":"b","storage":"block","capacity_gib":null})")
            .status == 200);

  // Get by id; a name or unknown id is volume_not_found.
  CHECK(f.call(Method::get, "/v1/volumes/" + id).status == 200);
  ApiResponse by_name = f.call(Method::get, "/v1/volumes/alpha");
  CHECK(by_name.status == 404);
  CHECK(code_of(by_name) == "volume_not_found");
  CHECK(code_of(f.call(Method::get, "/v1/volumes/00000000-0000-0000-0000-000000000000")) ==
        "volume_not_found");

  // PATCH: omitted unchanged, null clears, labels replace.
  ApiResponse p1 = f.call(Method::patch, "/v1/volumes/" + id, R"({"labels":{"a":"1"}})");
  REQUIRE(p1.status == 200);
  CHECK(json::parse(p1.body)["labels"] == json{{"a", "1"}});
  CHECK(json::parse(p1.body)["capacity_bytes"] == (uint64_t{2} << 30));
  ApiResponse p2 = f.call(Method::patch, "/v1/volumes/" + id, R"({"capacity_gib":null})");
  REQUIRE(p2.status == 200);
  CHECK(json::parse(p2.body)["capacity_bytes"].is_null());
  CHECK(json::parse(p2.body)["labels"] == json{{"a", "1"}});
  ApiResponse p3 =
      f.call(Method::patch, "/v1/volumes/" + id, R"({"capacity_gib":3,"labels":null})");
  REQUIRE(p3.status == 200);
  CHECK(json::parse(p3.body)["capacity_bytes"] == (uint64_t{3} << 30));
  CHECK(json::parse(p3.body)["labels"] == json::object());
  CHECK(code_of(f.call(Method::patch, "/v1/volumes/" + id, R"({"name":"x"})")) ==
        "invalid_request");
  CHECK(code_of(f.call(Method::patch, "/v1/volumes/" + id, R"({"capacity_gib":0})")) ==
        "invalid_request");

  // DELETE answers {"message"}; then the id is gone.
  ApiResponse del = f.call(Method::delete_, "/v1/volumes/" + id);
  CHECK(del.status == 200);
  CHECK(json::parse(del.body)["message"].is_string());
  CHECK(f.call(Method::delete_, "/v1/volumes/" + id).status == 404);
  CHECK(f.call(Method::patch, "/v1/volumes/" + id, "{}").status == 404);
}

TEST_CASE("msb default volume, sandboxes and billing", "[http][msb]") {
  {
    MsbFixture f;
    ApiResponse r = f.call(Method::get, "/v1/volumes/default");
    CHECK(r.status == 404);
    CHECK(code_of(r) == "volume_not_found");
  }
  MsbFixture f("shared");
  ApiResponse missing = f.call(Method::get, "/v1/volumes/default");
  CHECK(missing.status == 404);
  CHECK(code_of(missing) == "volume_not_found");
  const std::string id = f.create("shared");
  ApiResponse r = f.call(Method::get, "/v1/volumes/default");
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body)["id"] == id);
  // The SDK's isDefault is kind == "host"; everywhere else the volume is that kind too.
  CHECK(json::parse(r.body)["kind"] == "host");
  CHECK(json::parse(f.call(Method::get, "/v1/volumes/" + id).body)["kind"] == "host");
  CHECK(json::parse(f.call(Method::get, "/v1/volumes").body)[0]["kind"] == "host");
  const std::string other = f.create("other");
  CHECK(json::parse(f.call(Method::get, "/v1/volumes/" + other).body)["kind"] == "managed");
  ApiResponse del = f.call(Method::delete_, "/v1/volumes/" + id);
  CHECK(del.status == 409);
  CHECK(code_of(del) == "volume_in_use");

  for (const char* path : {"/v1/sandboxes", "/v1/sandboxes/x", "/v1/billing/usage/storage"}) {
    INFO(path);
    ApiResponse s = f.call(Method::get, path);
    CHECK(s.status == 501);
    CHECK(code_of(s) == "unsupported");
    CHECK(f.call(Method::post, path, "{}").status == 501);
  }
}

TEST_CASE("msb files: every operation and its errors", "[http][msb]") {
  MsbFixture f;
  const std::string id = f.create("files", R"("capacity_gib":1)");
  const std::string base = "/v1/volumes/" + id + "/files";
  write_file(f, id, "d/a.txt", "hello");

  ApiResponse st = f.call(Method::get, base + "/stat", {}, "d/a.txt");
  REQUIRE(st.status == 200);
  const json meta = json::parse(st.body)["metadata"];
  CHECK(meta["path"] == "d/a.txt");
  CHECK(meta["kind"] == "file");
  CHECK(meta["size"] == 5);
  CHECK(meta["mode"] == 0644);
  CHECK(meta["readonly"] == false);
  for (const char* k : {"uid", "gid", "accessed_at", "modified_at", "created_at"})
    CHECK(meta.contains(k));
  CHECK(json::parse(f.call(Method::get, base + "/stat", {}, "d").body)["metadata"]["kind"] ==
        "directory");

  CHECK(json::parse(f.call(Method::get, base + "/exists", {}, "d/a.txt").body)["exists"] == true);
  CHECK(json::parse(f.call(Method::get, base + "/exists", {}, "d/nope").body)["exists"] == false);

  CHECK(f.call(Method::post, base + "/mkdir", R"({"path":"x/y/z"})").status == 200);
  CHECK(f.call(Method::post, base + "/mkdir", R"({"path":"x/y/z"})").status == 200);  // -p
  CHECK(f.call(Method::post, base + "/copy", R"({"from":"d/a.txt","to":"x/y/z/b.txt"})").status ==
        200);
  CHECK(f.call(Method::post, base + "/rename", R"({"from":"d/a.txt","to":"n/c.txt"})").status ==
        200);
  CHECK(json::parse(f.call(Method::get, base + "/exists", {}, "d/a.txt").body)["exists"] == false);

  // List: the root with an empty header or none; recursion from the header.
  ApiResponse top = f.call(Method::get, base, {}, "");
  REQUIRE(top.status == 200);
  std::set<std::string> names;
  const json top_json = json::parse(top.body);
  for (const auto& e : top_json["entries"])
    names.insert(e["path"].get<std::string>());
  CHECK(names == std::set<std::string>{"d", "n", "x"});
  ApiResponse deep = f.call(Method::get, base, {}, "", "true");
  names.clear();
  const json deep_json = json::parse(deep.body);
  for (const auto& e : deep_json["entries"])
    names.insert(e["path"].get<std::string>());
  CHECK(names.count("x/y/z/b.txt") == 1);
  CHECK(names.count("n/c.txt") == 1);
  CHECK(f.call(Method::get, base).status == 200);  // no header: the root
  CHECK(code_of(f.call(Method::get, base, {}, "", "yes")) == "invalid_request");

  // Remove: a file, a non-empty dir refused, then recursively.
  CHECK(f.call(Method::delete_, base, {}, "n/c.txt", "false").status == 200);
  ApiResponse full = f.call(Method::delete_, base, {}, "x", "false");
  CHECK(full.status == 409);
  CHECK(code_of(full) == "directory_not_empty");
  CHECK(f.call(Method::delete_, base, {}, "x", "true").status == 200);
  CHECK(code_of(f.call(Method::delete_, base, {}, "", "true")) == "invalid_volume_path");

  // Not found.
  ApiResponse nf = f.call(Method::get, base + "/stat", {}, "nope");
  CHECK(nf.status == 404);
  CHECK(code_of(nf) == "volume_file_not_found");
  CHECK(code_of(f.call(Method::delete_, base, {}, "nope", "false")) == "volume_file_not_found");
  CHECK(code_of(f.call(Method::post, base + "/copy", R"({"from":"nope","to":"b"})")) ==
        "volume_file_not_found");
  const std::string other = "/v1/volumes/00000000-0000-0000-0000-000000000000/files";
  ApiResponse nv = f.call(Method::get, other + "/stat", {}, "a");
  CHECK(nv.status == 404);
  CHECK(code_of(nv) == "volume_not_found");

  // Required headers and bodies.
  CHECK(code_of(f.call(Method::get, base + "/stat")) == "invalid_volume_path");
  CHECK(code_of(f.call(Method::delete_, base)) == "invalid_volume_path");
  CHECK(code_of(f.call(Method::post, base + "/mkdir", "{}")) == "invalid_request");
  CHECK(code_of(f.call(Method::post, base + "/copy", R"({"from":"a"})")) == "invalid_request");
  CHECK(code_of(f.call(Method::post, base + "/mkdir", R"({"path":"a","mode":1})")) ==
        "invalid_request");
  CHECK(code_of(f.call_raw(Method::get, base + "/stat", "YQ==")) == "invalid_volume_path");
}

TEST_CASE("msb files: every escape is invalid_volume_path", "[http][msb]") {
  MsbFixture f;
  const std::string id = f.create("esc");
  const std::string base = "/v1/volumes/" + id + "/files";
  // A symlink planted on the host (as a guest under stat virtualization relaxed/off makes).
  const auto root = f.dir / "volumes" / "esc";
  std::filesystem::create_directory_symlink("/etc", root / "link");
  std::filesystem::create_symlink("/etc/hostname", root / "flink");
  std::ofstream(f.dir / "outside.txt") << "secret";
  write_file(f, id, "c", "source of copies and renames");

  for (const char* p : {"../outside.txt", "/etc/hostname", "a/../../outside.txt", "..", "/",
                        "link/hostname", "flink", "link", "nothere/../../x", "./../x"}) {
    INFO(p);
    ApiResponse st = f.call(Method::get, base + "/stat", {}, p);
    // lstat of the link itself is fine (kind "file", never followed); anything through it is not.
    if (std::string_view(p) == "flink" || std::string_view(p) == "link") {
      CHECK(st.status == 200);
      CHECK(json::parse(st.body)["metadata"]["kind"] == "file");
    } else {
      CHECK(code_of(st) == "invalid_volume_path");
    }
    MsbRequest r;
    r.method = Method::get;
    r.match = *match_msb_route(base + "/content");
    r.path_header = encode_msb_path(p);
    auto rd = f.msb->open_read(r);
    CHECK_FALSE(rd.ok());
    r.method = Method::put;
    auto wr = f.msb->open_write(r);
    CHECK_FALSE(wr.ok());
    if (!wr.ok()) {
      CHECK((wr.error().code == ErrorCode::path_escape ||
             wr.error().code == ErrorCode::invalid_path ||
             wr.error().code == ErrorCode::is_a_directory));
    }
    CHECK(code_of(f.call(Method::post, base + "/mkdir", json{{"path", p}}.dump())) ==
          "invalid_volume_path");
    CHECK(code_of(f.call(Method::post, base + "/copy", json{{"from", p}, {"to", "c"}}.dump())) ==
          "invalid_volume_path");
    if (std::string_view(p) != "flink" && std::string_view(p) != "link") {
      CHECK(code_of(f.call(Method::post, base + "/copy", json{{"from", "c"}, {"to", p}}.dump())) ==
            "invalid_volume_path");
      CHECK(code_of(f.call(Method::post, base + "/rename",
                           json{{"from", "c"}, {"to", p}}.dump())) == "invalid_volume_path");
    }
  }
  // Percent-encoding is not decoded in the header: "%2e%2e" is a literal (odd) name.
  CHECK(code_of(f.call(Method::get, base + "/stat", {}, "%2e%2e/outside.txt")) ==
        "volume_file_not_found");
  // Nothing outside changed, and the targets of the links are intact.
  CHECK(std::filesystem::exists(f.dir / "outside.txt"));
  CHECK(std::filesystem::is_symlink(root / "link"));
}

TEST_CASE("msb: capacity_gib is a true cap, copy counts against it", "[http][msb]") {
  MsbFixture f;
  const std::string id = f.create("cap", R"("capacity_gib":1)");
  const std::string base = "/v1/volumes/" + id + "/files";
  // The volume's one quota (shared with its mounts) carries the cap.
  std::shared_ptr<passthrough::Quota> quota = f.store->quota("cap");
  REQUIRE(quota);
  CHECK(quota->limit() == (uint64_t{1} << 30));
  write_file(f, id, "a.bin", std::string(64 << 10, 'x'));
  CHECK(json::parse(f.call(Method::get, "/v1/volumes/" + id).body)["used_bytes"] == uint64_t{64}
                                                                                        << 10);
  // Fill the rest but 32 KiB, as a guest writing through a mount of the volume would (a GiB of
  // real writes would be a slow test): a 64 KiB copy or upload no longer fits.
  const uint64_t filler = quota->limit() - quota->used() - (32 << 10);
  REQUIRE(quota->try_charge(filler));
  ApiResponse copy = f.call(Method::post, base + "/copy", R"({"from":"a.bin","to":"b.bin"})");
  CHECK(copy.status == 507);
  CHECK(code_of(copy) == "quota_exceeded");
  CHECK(json::parse(f.call(Method::get, base + "/exists", {}, "b.bin").body)["exists"] == false);
  {
    MsbRequest r;
    r.method = Method::put;
    r.match = *match_msb_route(base + "/content");
    r.path_header = encode_msb_path("c.bin");
    auto up = f.msb->open_write(r);
    REQUIRE(up.ok());
    const std::string chunk(64 << 10, 'y');
    auto wrote = up->writer->write(std::as_bytes(std::span(chunk.data(), chunk.size())));
    REQUIRE_FALSE(wrote.ok());
    CHECK(wrote.error().code == ErrorCode::quota_exceeded);
  }
  // Raising the cap (PATCH capacity_gib) changes the live limit: the copy fits.
  REQUIRE(f.call(Method::patch, "/v1/volumes/" + id, R"({"capacity_gib":2})").status == 200);
  CHECK(quota->limit() == (uint64_t{2} << 30));
  CHECK(f.call(Method::post, base + "/copy", R"({"from":"a.bin","to":"b.bin"})").status == 200);
  quota->release(filler);
  // Removing the cap leaves the quota counting, unlimited.
  REQUIRE(f.call(Method::patch, "/v1/volumes/" + id, R"({"capacity_gib":null})").status == 200);
  CHECK(json::parse(f.call(Method::get, "/v1/volumes/" + id).body)["capacity_bytes"].is_null());
}
