// Readiness signals (tools/readiness.h): port files, and systemd's
// notification protocol spoken to a socket the test binds.
#include "tools/readiness.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <optional>

#include "tests/common/temp_dir.h"
#include "tests/tools/annald_process.h"

namespace annal::tools {
namespace {

using testing::NotifySocket;

// Sets NOTIFY_SOCKET for one test and restores the environment after.
class ReadinessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* v = std::getenv("NOTIFY_SOCKET")) saved_ = v;
    ::unsetenv("NOTIFY_SOCKET");
  }
  void TearDown() override {
    if (saved_)
      ::setenv("NOTIFY_SOCKET", saved_->c_str(), 1);
    else
      ::unsetenv("NOTIFY_SOCKET");
  }
  std::optional<std::string> saved_;
  test::TempDir dir_{"annal-readiness"};
};

TEST_F(ReadinessTest, WithoutNotifySocketNotifyingDoesNothingAndSucceeds) {
  EXPECT_TRUE(notify_ready("serving").is_ok());
  ::setenv("NOTIFY_SOCKET", "", 1);
  EXPECT_TRUE(notify_stopping("stopping").is_ok());
}

TEST_F(ReadinessTest, ReadyAndStoppingAreSentAsOneDatagramEach) {
  const std::string path = dir_.path() + "/notify";
  NotifySocket sock(path);
  ASSERT_TRUE(sock.bound());
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  ASSERT_TRUE(notify_ready("serving on 127.0.0.1:7411").is_ok());
  EXPECT_EQ(sock.receive(), "READY=1\nSTATUS=serving on 127.0.0.1:7411");
  ASSERT_TRUE(notify_stopping("stopping").is_ok());
  EXPECT_EQ(sock.receive(), "STOPPING=1\nSTATUS=stopping");
}

TEST_F(ReadinessTest, AnAbstractSocketNameIsUnderstood) {
  const std::string name = "@annal-readiness-test-" + std::to_string(::getpid());
  NotifySocket sock(name);
  ASSERT_TRUE(sock.bound());
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  ASSERT_TRUE(notify_ready("x").is_ok());
  EXPECT_EQ(sock.receive(), "READY=1\nSTATUS=x");
}

TEST_F(ReadinessTest, ARelativeOrMissingSocketIsAnErrorNamingIt) {
  ::setenv("NOTIFY_SOCKET", "relative/sock", 1);
  auto st = notify_ready("x");
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.to_string().find("relative/sock"), std::string::npos) << st.to_string();
  const std::string missing = dir_.path() + "/nobody-listens";
  ::setenv("NOTIFY_SOCKET", missing.c_str(), 1);
  st = notify_ready("x");
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.to_string().find(missing), std::string::npos) << st.to_string();
}

TEST_F(ReadinessTest, APortFileHoldsTheNumberAndNoTemporaryFileRemains) {
  const std::string path = dir_.path() + "/port";
  ASSERT_TRUE(write_port_file(path, 7411).is_ok());
  EXPECT_EQ(testing::read_text_file(path), "7411\n");
  EXPECT_NE(::access((path + ".tmp").c_str(), F_OK), 0);
  auto st = write_port_file(dir_.path() + "/no/such/dir/port", 1);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.to_string().find("no/such/dir/port.tmp"), std::string::npos) << st.to_string();
}

}  // namespace
}  // namespace annal::tools
