// Tests of the shared input checks (input_limits.h) and of the model JSON loader under hostile
// input: non-regular files, size and nesting limits, short excerpts in messages, layer caps.
#include "pagedkv/core/input_limits.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pagedkv/core/model_spec.h"

namespace pagedkv {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "input_limits_" + std::to_string(::getpid()) + "_" + name;
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(ReadTextFileTest, ReadsARegularFile) {
  const std::string path = WriteFile("ok.txt", "hello\n");
  absl::StatusOr<std::string> text = ReadTextFile(path, 100, "test file");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "hello\n");
}

TEST(ReadTextFileTest, MissingFileIsNotFoundWithErrno) {
  absl::StatusOr<std::string> text = ReadTextFile(TempPath("missing"), 100, "test file");
  EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(text.status()), HasSubstr("No such file or directory"));
  EXPECT_THAT(Msg(text.status()), HasSubstr("test file '"));
}

TEST(ReadTextFileTest, NonRegularFilesAreRefusedBeforeReading) {
  absl::StatusOr<std::string> dir = ReadTextFile(::testing::TempDir(), 100, "test file");
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(dir.status()), HasSubstr("is a directory"));
  // /dev/zero never ends: it must be refused, not read until the size cap.
  absl::StatusOr<std::string> zero = ReadTextFile("/dev/zero", 1 << 20, "test file");
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(zero.status()), HasSubstr("is a character device"));
  // A FIFO without a writer: opening must not block.
  const std::string fifo = TempPath("fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  absl::StatusOr<std::string> pipe = ReadTextFile(fifo, 100, "test file");
  EXPECT_THAT(Msg(pipe.status()), HasSubstr("is a FIFO"));
  ::unlink(fifo.c_str());
}

TEST(ReadTextFileTest, SizeCapIsStated) {
  const std::string path = WriteFile("big.txt", std::string(1000, 'x'));
  absl::StatusOr<std::string> text = ReadTextFile(path, 999, "test file");
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(text.status()), HasSubstr("has 1000 bytes, more than the limit of 999 bytes"));
  EXPECT_TRUE(ReadTextFile(path, 1000, "test file").ok());
}

TEST(CheckJsonNestingTest, CountsArraysAndObjectsOutsideStrings) {
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(CheckJsonNesting(ok, 64).ok());
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  absl::Status st = CheckJsonNesting(deep, 64);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(st), HasSubstr("nested deeper than 64 levels at byte 65"));
  // Brackets inside strings, escaped quotes included, do not count.
  const std::string strings = "{\"a\": \"[[[[\\\"[[[[\", \"b\": [{}]}";
  EXPECT_TRUE(CheckJsonNesting(strings, 3).ok());  // {, [ and { of "b"
  EXPECT_FALSE(CheckJsonNesting(strings, 2).ok());
  EXPECT_FALSE(CheckJsonNesting("{\"a\": [[{}]]}", 3).ok());
  // Unbalanced closers are left to the parser.
  EXPECT_TRUE(CheckJsonNesting("]]]]{", 1).ok());
}

TEST(ExcerptTest, CutsAndEscapes) {
  EXPECT_EQ(Excerpt("short"), "short");
  EXPECT_EQ(Excerpt(std::string(100, 'a'), 10), "aaaaaaaaaa... (100 bytes)");
  EXPECT_EQ(Excerpt(std::string("a\nb\x01", 4)), "a\\x0ab\\x01");
}

TEST(ModelJsonLimitsTest, DeepNestingIsRefusedWithoutRecursion) {
  // 100,000 nested arrays used to overflow the stack while the error printed the value.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(deep);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(spec.status()), HasSubstr("nested deeper than 64 levels"));
  const std::string in_field = "{\"num_q_heads\": " + std::string(50, '[') + std::string(50, ']') +
                               ", \"num_kv_heads\": 1, \"head_dim\": 1, \"num_layers\": 1}";
  spec = ModelSpec::FromJson(in_field);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(spec.status()), HasSubstr("'num_q_heads' must be an integer, got an array"));
}

TEST(ModelJsonLimitsTest, ErrorsQuoteATypeAndAnExcerptNeverTheWholeValue) {
  std::string big = "[";
  for (int i = 0; i < 100000; ++i) big += (i ? "," : "") + std::to_string(i);
  big += "]";
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(
      "{\"num_q_heads\": " + big + ", \"num_kv_heads\": 1, \"head_dim\": 1, \"num_layers\": 1}");
  EXPECT_THAT(Msg(spec.status()), HasSubstr("got an array of 100000 elements"));
  EXPECT_LT(Msg(spec.status()).size(), 300u);
  spec = ModelSpec::FromJson(
      "{\"name\": 7, \"num_q_heads\": 1, \"num_kv_heads\": 1, "
      "\"head_dim\": 1, \"num_layers\": 1}");
  EXPECT_THAT(Msg(spec.status()), HasSubstr("got 7 (number)"));
  const std::string long_string(1 << 20, 'z');
  spec = ModelSpec::FromJson("{\"num_q_heads\": \"" + long_string +
                             "\", \"num_kv_heads\": 1, \"head_dim\": 1, \"num_layers\": 1}");
  EXPECT_THAT(Msg(spec.status()), HasSubstr("got the string \"zzz"));
  EXPECT_LT(Msg(spec.status()).size(), 300u);
  // A syntax error inside a long string: the parser's message is cut too.
  spec = ModelSpec::FromJson("{\"name\": \"" + long_string + "\x01\"}");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(Msg(spec.status()).size(), 400u);
  spec = ModelSpec::FromJson("{\"layers\": [\"" + long_string +
                             "\"], \"num_q_heads\": 1, "
                             "\"num_kv_heads\": 1, \"head_dim\": 1}");
  EXPECT_THAT(Msg(spec.status()), HasSubstr("bad layer 'zzz"));
  EXPECT_LT(Msg(spec.status()).size(), 500u);
}

TEST(ModelJsonLimitsTest, SizesAndCountsAreCapped) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJson(
      "{\"num_q_heads\": 1, \"num_kv_heads\": 1, \"head_dim\": 1, \"num_layers\": 100000000}");
  EXPECT_THAT(Msg(spec.status()), HasSubstr("exceeds the limit of 100000 layers"));
  std::string layers = "[";
  for (int i = 0; i <= ModelSpec::kMaxLayers; ++i) layers += i ? ",\"full\"" : "\"full\"";
  layers += "]";
  spec = ModelSpec::FromJson(
      "{\"num_q_heads\": 1, \"num_kv_heads\": 1, \"head_dim\": 1, "
      "\"layers\": " +
      layers + "}");
  EXPECT_THAT(Msg(spec.status()), HasSubstr("lists 100001 layers, more than the limit"));
  spec = ModelSpec::FromJson(
      "{\"num_q_heads\": 1048576, \"num_kv_heads\": 1, \"head_dim\": 1, \"num_layers\": 1}");
  EXPECT_THAT(Msg(spec.status()), HasSubstr("num_q_heads must be in [1, 65536], got 1048576"));
  spec = ModelSpec::FromJson(std::string(kMaxModelFileBytes + 1, ' '));
  EXPECT_THAT(Msg(spec.status()), HasSubstr("more than the limit of 16777216 bytes"));
  ModelSpec many;
  many.num_q_heads = many.num_kv_heads = many.head_dim = 1;
  many.layers.assign(ModelSpec::kMaxLayers + 1, LayerSpec::Full());
  EXPECT_THAT(Msg(many.Validate()), HasSubstr("more than the limit of 100000"));
}

TEST(ModelJsonLimitsTest, ModelFilesGetTheSameChecksAsTraces) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::FromJsonFile("/dev/zero");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(spec.status()), HasSubstr("'/dev/zero' is a character device"));
  spec = ModelSpec::FromJsonFile(::testing::TempDir());
  EXPECT_THAT(Msg(spec.status()), HasSubstr("is a directory"));
  EXPECT_THAT(Msg(spec.status()), Not(HasSubstr("syntax error")));
  spec = ModelSpec::FromJsonFile(TempPath("no_such_model.json"));
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(spec.status()), HasSubstr("No such file or directory"));
  const std::string ok =
      WriteFile("ok_model.json",
                "{\"num_q_heads\": 4, \"num_kv_heads\": 2, \"head_dim\": 8, \"num_layers\": 2}");
  EXPECT_TRUE(ModelSpec::FromJsonFile(ok).ok());
}

}  // namespace
}  // namespace pagedkv
